"""What the whole-process benches share: a free local port, and the fake
OpenAI-compatible server (benches/fake_openai.py) with the environment that
points memchat at it."""
import os
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_chat_server(work):
    """benches/fake_openai.py on a free port (12 tokens, no pause), and an
    environment without the caller's OPENAI_*/MEMCHAT_* settings that points
    memchat at it, with its home and config directory in `work`."""
    port = free_port()
    server = subprocess.Popen([sys.executable, os.path.join(ROOT, "benches", "fake_openai.py"),
                               str(port), "0", "12"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "MEMCHAT_"))}
    env.update(NO_COLOR="1", MEMCHAT_LOCK_WAIT="5", OPENAI_API_KEY="sk-bench",
               OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1", HOME=work,
               XDG_CONFIG_HOME=os.path.join(work, "config"))
    return server, env
