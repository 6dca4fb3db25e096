-- A one-shot turn's statements as memchat sends them to PostgreSQL (captured
-- with log_statement = all from `memchat -s NAME "hi"` on a new session,
-- 2026-12-05), pipelined in the same three round trips, for pgbench: what the
-- server (and a pooler) cost with a client that costs nothing, the floor
-- under memchat's PostgreSQL one-shot. benches/pg_floor.sh runs it.
-- Parameters are inlined (pgbench -M extended still parses and plans each
-- statement per execution, as memchat's unnamed statements are). Each run
-- uses a new session, as the "fresh" scenario of benches/pg_oneshot.py.
\set n random(1, 900000000000000)
\startpipeline
SET application_name = 'memchat';
SET tcp_keepalives_idle = 10;
INSERT INTO memchat_sessions (name, created_at) SELECT 'floor' || :n, '2026-12-05T17:05:02Z' WHERE (SELECT version FROM memchat_schema) = 3 AND set_config('synchronous_commit', 'off', true) IS NOT NULL ON CONFLICT (name) DO NOTHING;
SELECT pg_try_advisory_lock(hashtext('memchat:' || current_schema()), (SELECT (id % 2147483647)::int4 FROM memchat_sessions WHERE name = 'floor' || :n AND (SELECT version FROM memchat_schema) = 3));
SELECT id, name, created_at, last_seq, revision, settings::text, settings_at FROM memchat_sessions WHERE name = 'floor' || :n;
SELECT seq, kind, role, content, content_exact, at, model, interrupted, truncated, tokens_encoding, tokens_count, prompt_tokens, completion_tokens, covers_first, covers_last, method FROM memchat_records WHERE session_id = (SELECT id FROM memchat_sessions WHERE name = 'floor' || :n) AND NOT archived ORDER BY seq;
SELECT version FROM memchat_schema;
\endpipeline
WITH rev AS (UPDATE memchat_sessions SET revision = revision + 1, last_seq = 1, updated_at = now(), settings = CASE WHEN true THEN '{"model":"gpt-4o-mini"}'::text::jsonb ELSE settings END, settings_at = CASE WHEN true THEN '2026-12-05T17:05:02Z' ELSE settings_at END WHERE name = 'floor' || :n AND set_config('lock_timeout', '5000ms', true) IS NOT NULL AND CASE WHEN revision = 0 THEN true ELSE ('memchat-raced: revision ' || revision)::int = 0 END RETURNING id) INSERT INTO memchat_records (session_id, archived, seq, kind, role, content, content_exact, at, model, interrupted, truncated, tokens_encoding, tokens_count, prompt_tokens, completion_tokens, covers_first, covers_last, method) SELECT rev.id, false, 1, 'message', 'user', 'hi', NULL, '2026-12-05T17:05:02Z', NULL, false, false, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM rev;
\startpipeline
WITH rev AS (UPDATE memchat_sessions SET revision = revision + 1, last_seq = 2, updated_at = now(), settings = CASE WHEN false THEN NULL::text::jsonb ELSE settings END, settings_at = CASE WHEN false THEN NULL ELSE settings_at END WHERE name = 'floor' || :n AND set_config('lock_timeout', '5000ms', true) IS NOT NULL AND CASE WHEN revision = 1 THEN true ELSE ('memchat-raced: revision ' || revision)::int = 0 END RETURNING id) INSERT INTO memchat_records (session_id, archived, seq, kind, role, content, content_exact, at, model, interrupted, truncated, tokens_encoding, tokens_count, prompt_tokens, completion_tokens, covers_first, covers_last, method) SELECT rev.id, false, 2, 'message', 'assistant', 't0 t1 t2 t3 t4 t5 t6 t7 t8 t9 t10 t11 ', NULL, '2026-12-05T17:05:02Z', 'gpt-4o-mini', false, false, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM rev;
SELECT pg_advisory_unlock(hashtext('memchat:' || current_schema()), (SELECT (id % 2147483647)::int4 FROM memchat_sessions WHERE name = 'floor' || :n));
\endpipeline
