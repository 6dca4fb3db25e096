//! The store URL: `postgres://user:password@host:port/db?sslmode=…`, parsed
//! into a connection configuration, and shown with its password masked.
//!
//! memchat reads `sslmode` itself (tokio-postgres knows only disable, prefer
//! and require) and `sslrootcert`; every other parameter is libpq's and goes
//! to tokio-postgres as written. The password never appears in anything
//! memchat prints: [`mask`] replaces it (in the user part and in a
//! `password=` parameter) with `***`, and every error names the store by its
//! masked URL.

use std::path::PathBuf;
use std::time::Duration;

use tokio_postgres::config::SslMode as WireSslMode;

/// How long a connection attempt may take before it is an error (libpq's
/// `connect_timeout`, which the URL may set).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// libpq's `sslmode`, with libpq's meaning except where noted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS if the server offers it, plain otherwise; the certificate is not
    /// checked (as libpq). `allow` is read as `prefer`: both accept a plain
    /// connection, `prefer` tries TLS first.
    Prefer,
    /// TLS or nothing, without checking the certificate (libpq: encryption
    /// only, unless a root certificate file is given; memchat never checks
    /// one here: use `verify-ca` or `verify-full` for that).
    Require,
    /// TLS, the chain checked against the roots, not the host name.
    VerifyCa,
    /// TLS, the chain and the host name checked (what a managed service
    /// with a public certificate wants).
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, String> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode={other:?} is not one of disable, allow, prefer, require, \
                     verify-ca, verify-full"
                ));
            }
        })
    }

    /// What tokio-postgres is told: whether TLS is optional or required.
    pub fn wire(self) -> WireSslMode {
        match self {
            SslMode::Disable => WireSslMode::Disable,
            SslMode::Prefer => WireSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireSslMode::Require,
        }
    }
}

/// Where the trusted roots come from for `verify-ca` and `verify-full`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The platform's store (`sslrootcert` not given, or `system`).
    System,
    /// A PEM file of CA certificates (`sslrootcert=PATH`).
    File(PathBuf),
}

/// A parsed store URL.
#[derive(Clone)]
pub struct StoreUrl {
    /// The connection settings for tokio-postgres (TLS mode set from `ssl`).
    pub config: tokio_postgres::Config,
    pub ssl: SslMode,
    pub roots: Roots,
    /// The URL as the user may see it: password masked.
    pub shown: String,
    /// Whether memchat names the connection itself (the URL has no
    /// `application_name`).
    pub name_it: bool,
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the password: never print it.
        f.debug_struct("StoreUrl")
            .field("url", &self.shown)
            .field("ssl", &self.ssl)
            .finish()
    }
}

/// Whether a store setting names PostgreSQL rather than a directory.
pub fn is_postgres_url(store: &str) -> bool {
    store.starts_with("postgres://") || store.starts_with("postgresql://")
}

/// Parses a `postgres://` URL. Without a user, `PGUSER` or `USER` is used;
/// without a password, `PGPASSWORD` (so the password need not be in the URL
/// at all). An error is the reason alone, password masked: the caller names
/// the store by its masked URL (once).
pub fn parse(url: &str) -> Result<StoreUrl, String> {
    let shown = mask_url(url);
    if !is_postgres_url(url) {
        return Err("a PostgreSQL store URL starts with postgres:// or postgresql://".to_string());
    }
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut ssl = SslMode::Prefer;
    let mut roots = Roots::System;
    let mut kept: Vec<&str> = Vec::new();
    let mut listed_hosts: Vec<String> = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => ssl = SslMode::parse(value)?,
            "sslrootcert" if value == "system" => roots = Roots::System,
            "sslrootcert" => roots = Roots::File(PathBuf::from(percent_decode(value))),
            // A list, as libpq reads it (tokio-postgres takes the URL's
            // `host=` whole); an empty entry names nothing.
            "host" => listed_hosts.extend(
                value
                    .split(',')
                    .map(percent_decode)
                    .filter(|host| !host.is_empty()),
            ),
            _ if !pair.is_empty() => kept.push(pair),
            _ => {}
        }
    }
    let rebuilt = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config: tokio_postgres::Config = rebuilt
        .parse()
        .map_err(|e: tokio_postgres::Error| mask(&error_chain(&e)))?;
    if config.get_channel_binding() == tokio_postgres::config::ChannelBinding::Require {
        // tokio-postgres would refuse every server after authentication
        // began, blaming it ("server did not use channel binding").
        return Err(
            "channel_binding=require asks for SCRAM-SHA-256-PLUS, which memchat does not \
                    offer, so every server would be refused; leave it out (SCRAM-SHA-256 still \
                    authenticates)"
                .to_string(),
        );
    }
    for host in listed_hosts {
        config.host(host);
    }
    if config.get_user().is_none() {
        let user = std::env::var("PGUSER")
            .or_else(|_| std::env::var("USER"))
            .map_err(|_| "no user in the URL, and neither PGUSER nor USER is set".to_string())?;
        config.user(user);
    }
    if config.get_password().is_none()
        && let Ok(password) = std::env::var("PGPASSWORD")
    {
        config.password(password);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_ports().is_empty()
        && let Some(port) = std::env::var("PGPORT").ok().and_then(|p| p.parse().ok())
    {
        config.port(port);
    }
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        let pghost = std::env::var("PGHOST").ok();
        default_host(&mut config, pghost.as_deref(), |socket| socket.exists());
    }
    // PostgreSQL has no TLS over a Unix-domain socket: libpq ignores
    // `sslmode` there (the socket's file permissions guard it), and so
    // does memchat, where every host is one.
    if config.get_hosts().iter().all(is_unix_socket) && config.get_hostaddrs().is_empty() {
        ssl = SslMode::Disable;
    }
    config.ssl_mode(ssl.wire());
    // memchat's own name for the connection is set with the first round
    // trip (see conn.rs), not in the startup message: a pooler would send
    // it to the server with a round trip of its own. A name in the URL is
    // the user's, and goes in the startup message.
    let name_it = config.get_application_name().is_none();
    // The client notices a server that vanished (the server side is set per
    // connection, see conn.rs).
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(10));
    Ok(StoreUrl {
        name_it,
        config,
        ssl,
        roots,
        shown,
    })
}

/// Where to connect when the URL names no host (`postgres:///db`): the
/// hosts in `PGHOST` (as libpq reads it), else the server's Unix-domain
/// socket if there is one in `/var/run/postgresql` or `/tmp` (where
/// Debian's libpq and PostgreSQL's own look), else localhost over TCP.
fn default_host(
    config: &mut tokio_postgres::Config,
    pghost: Option<&str>,
    socket_exists: impl Fn(&std::path::Path) -> bool,
) {
    let listed: Vec<&str> = pghost
        .unwrap_or("")
        .split(',')
        .filter(|host| !host.is_empty())
        .collect();
    if !listed.is_empty() {
        for host in listed {
            config.host(host);
        }
        return;
    }
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let socket_dir = ["/var/run/postgresql", "/tmp"]
        .into_iter()
        .find(|dir| socket_exists(&std::path::Path::new(dir).join(format!(".s.PGSQL.{port}"))));
    config.host(socket_dir.unwrap_or("localhost"));
}

/// The connections to try, in order: one configuration per host of a list
/// (with its `hostaddr` and its port, paired as tokio-postgres pairs them),
/// each to be given the connect timeout of its own. tokio-postgres bounds
/// only a socket's connect by that timeout, and waits forever on a host
/// that accepts and never answers, never reaching the next one. A single
/// host, a list tokio-postgres would reject (it says why), or a list to be
/// tried in a random order (`load_balance_hosts=random`, which it shuffles
/// itself) is one attempt: the configuration as it is. A Unix-domain
/// socket's attempt has TLS off, so a list may mix sockets and TCP hosts
/// whatever the `sslmode`.
pub fn attempts(config: &tokio_postgres::Config) -> Vec<tokio_postgres::Config> {
    use tokio_postgres::config::{Host, LoadBalanceHosts};
    let (hosts, hostaddrs, ports) = (
        config.get_hosts(),
        config.get_hostaddrs(),
        config.get_ports(),
    );
    let count = hosts.len().max(hostaddrs.len());
    let paired = hosts.is_empty() || hostaddrs.is_empty() || hosts.len() == hostaddrs.len();
    if count < 2
        || !paired
        || (ports.len() > 1 && ports.len() != count)
        || config.get_load_balance_hosts() == LoadBalanceHosts::Random
    {
        return vec![config.clone()];
    }
    (0..count)
        .map(|i| {
            let mut one = settings_without_hosts(config);
            match hosts.get(i) {
                Some(Host::Tcp(name)) => {
                    one.host(name);
                }
                #[cfg(unix)]
                Some(Host::Unix(path)) => {
                    // No TLS on a socket, whatever `sslmode` says (as libpq).
                    one.host_path(path).ssl_mode(WireSslMode::Disable);
                }
                None => {}
            }
            if let Some(addr) = hostaddrs.get(i) {
                one.hostaddr(*addr);
            }
            if let Some(port) = ports.get(i).or(ports.first()) {
                one.port(*port);
            }
            one
        })
        .collect()
}

/// How an error names the host of one attempt ([`attempts`]): its name or
/// socket directory, its address when given, and its port.
pub fn attempt_name(attempt: &tokio_postgres::Config) -> String {
    let port = attempt.get_ports().first().copied().unwrap_or(5432);
    let host = match attempt.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(name)) => name.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(dir)) => dir.display().to_string(),
        None => String::new(),
    };
    match attempt.get_hostaddrs().first() {
        Some(addr) if host.is_empty() => format!("{addr}:{port}"),
        Some(addr) => format!("{host} ({addr}):{port}"),
        None => format!("{host}:{port}"),
    }
}

/// Every setting of `config` but its hosts, addresses and ports (the
/// tokio-postgres configuration has no way to remove them).
fn settings_without_hosts(config: &tokio_postgres::Config) -> tokio_postgres::Config {
    let mut one = tokio_postgres::Config::new();
    if let Some(user) = config.get_user() {
        one.user(user);
    }
    if let Some(password) = config.get_password() {
        one.password(password);
    }
    if let Some(dbname) = config.get_dbname() {
        one.dbname(dbname);
    }
    if let Some(options) = config.get_options() {
        one.options(options);
    }
    if let Some(name) = config.get_application_name() {
        one.application_name(name);
    }
    if let Some(timeout) = config.get_connect_timeout() {
        one.connect_timeout(*timeout);
    }
    if let Some(timeout) = config.get_tcp_user_timeout() {
        one.tcp_user_timeout(*timeout);
    }
    if let Some(interval) = config.get_keepalives_interval() {
        one.keepalives_interval(interval);
    }
    if let Some(retries) = config.get_keepalives_retries() {
        one.keepalives_retries(retries);
    }
    one.ssl_mode(config.get_ssl_mode())
        .ssl_negotiation(config.get_ssl_negotiation())
        .keepalives(config.get_keepalives())
        .keepalives_idle(config.get_keepalives_idle())
        .target_session_attrs(config.get_target_session_attrs())
        .channel_binding(config.get_channel_binding())
        .load_balance_hosts(config.get_load_balance_hosts());
    one
}

fn is_unix_socket(host: &tokio_postgres::config::Host) -> bool {
    match host {
        tokio_postgres::config::Host::Tcp(_) => false,
        #[cfg(unix)]
        tokio_postgres::config::Host::Unix(_) => true,
    }
}

/// An error and its causes on one line (tokio-postgres says only "invalid
/// connection string" and keeps the what and why in its source).
pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

/// Text with the password of every URL in it replaced by `***`: in the
/// user part (`user:secret@`) and in a `password` parameter (its name
/// percent-encoded or not, any case). For text that holds URLs among other
/// words (an error message): a URL ends at whitespace or a quote. A string
/// that is one whole URL is masked with [`mask_url`].
pub fn mask(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let mut end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`'))
            .unwrap_or(after.len());
        // A user part that ends after a raw space or quote (`user:pa ss@`):
        // the connection reads it to the first `@`, so the mask does too,
        // within the line (some text after it may be masked with it).
        let line_end = after.find('\n').unwrap_or(after.len());
        if !after[..end].contains('@')
            && after[..end].contains(':')
            && !after[..end].contains(['/', '?'])
            && let Some(at) = after[..line_end].find('@')
        {
            end = after[at..]
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`'))
                .map_or(after.len(), |i| at + i);
        }
        out.push_str(&mask_credentials(&after[..end]));
        rest = &after[end..];
    }
    out.push_str(rest);
    mask_password_parameters(&out, false)
}

/// `url`, one whole URL, with its password replaced by `***`, read as
/// tokio-postgres reads it: the user part runs to the first `@` whatever
/// comes before it (a raw `/`, `?`, `#` or space in a password is still the
/// password), and a parameter's value to the next `&`.
pub fn mask_url(url: &str) -> String {
    match url.find("://") {
        Some(at) => {
            let (scheme, rest) = url.split_at(at + 3);
            mask_password_parameters(&format!("{scheme}{}", mask_credentials(rest)), true)
        }
        None => mask(url),
    }
}

/// What follows `scheme://`, its user part's password masked. tokio-postgres
/// ends the user part at the first `@`; a password with a raw `@` (which it
/// misreads) is masked to the last `@` before the host's end as well.
fn mask_credentials(rest: &str) -> String {
    let Some(first_at) = rest.find('@') else {
        return rest.to_string();
    };
    let host_end = rest[first_at..]
        .find(['/', '?'])
        .map_or(rest.len(), |i| first_at + i);
    let creds_end = rest[..host_end].rfind('@').unwrap_or(first_at);
    match rest[..creds_end].split_once(':') {
        Some((user, _)) => format!("{user}:***{}", &rest[creds_end..]),
        None => rest.to_string(),
    }
}

/// `password=secret` as `password=***`: a URL parameter (after `?` or `&`,
/// its value up to the next `&`, or in free text also up to whitespace or
/// a quote) or a key=value setting (after whitespace or `;`, its value up
/// to whitespace, or a quoted value to its closing quote). The parameter's
/// name counts percent-decoded and in any case, as tokio-postgres decodes
/// it (`pass%77ord`) or a reader would take it (`PASSWORD`).
fn mask_password_parameters(text: &str, whole_url: bool) -> String {
    let is_delimiter =
        |c: char| matches!(c, '?' | '&' | ';' | '"' | '\'' | '`') || c.is_whitespace();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some(offset) = text[search..].find('=') {
        let eq = search + offset;
        search = eq + 1;
        let key_start = text[..eq]
            .char_indices()
            .rev()
            .find(|&(_, c)| is_delimiter(c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        if key_start < copied
            || !percent_decode(&text[key_start..eq]).eq_ignore_ascii_case("password")
        {
            continue;
        }
        let in_query = text[..key_start].ends_with(['?', '&']);
        let value = &text[eq + 1..];
        if value.starts_with("***") {
            // Masked already (a URL shown, then quoted in an error).
            continue;
        }
        let len = if in_query {
            // As the connection reads it, to the next `&`; in free text,
            // also to the end of its line or a quote (a raw space inside
            // it is part of it).
            value
                .find(|c: char| c == '&' || (!whole_url && matches!(c, '\n' | '"' | '`' | '\'')))
                .unwrap_or(value.len())
        } else if let Some(quoted) = value.strip_prefix('\'') {
            // A quoted key=value setting: to its closing quote (`\'` is
            // a quote inside it).
            let mut escaped = false;
            quoted
                .char_indices()
                .find(|&(_, c)| {
                    let closes = c == '\'' && !escaped;
                    escaped = c == '\\' && !escaped;
                    closes
                })
                .map_or(value.len(), |(i, _)| i + 2)
        } else {
            value
                .find(|c: char| c.is_whitespace() || c == ';')
                .unwrap_or(value.len())
        };
        out.push_str(&text[copied..=eq]);
        out.push_str("***");
        copied = eq + 1 + len;
        search = copied;
    }
    out.push_str(&text[copied..]);
    out
}

/// `%XX` decoded (a path in a URL parameter); bad escapes stay as written.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_masked_wherever_it_is() {
        assert_eq!(
            mask("postgres://ana:s3cret@db.example:5432/chat?sslmode=require"),
            "postgres://ana:***@db.example:5432/chat?sslmode=require"
        );
        assert_eq!(
            mask("postgresql://ana:p%40ss:w@rd@host/db"),
            "postgresql://ana:***@host/db",
            "the last @ ends the user part; a colon or @ in the password is masked too"
        );
        assert_eq!(
            mask("postgres://host/db?user=ana&password=hunter2&sslmode=disable"),
            "postgres://host/db?user=ana&password=***&sslmode=disable"
        );
        assert_eq!(
            mask("cannot reach postgres://u:pw@h/d: refused; host=h password=pw2"),
            "cannot reach postgres://u:***@h/d: refused; host=h password=***"
        );
        // As tokio-postgres reads a URL: the user part runs to the first
        // `@`, raw `/ ? #` and spaces included; a parameter's name is
        // percent-decoded, its value runs to the next `&` (red team).
        for (url, shown) in [
            (
                "postgres://postgres:hunter/2@127.0.0.1:5432/test?options=-csearch_path%3Ds",
                "postgres://postgres:***@127.0.0.1:5432/test?options=-csearch_path%3Ds",
            ),
            ("postgres://u:a?b#c d@h/db", "postgres://u:***@h/db"),
            (
                "postgres://h/db?pass%77ord=hunter2&x=1",
                "postgres://h/db?pass%77ord=***&x=1",
            ),
            (
                "postgres://h/db?password=xx#hunter",
                "postgres://h/db?password=***",
            ),
            (
                "postgres://h/db?password=hunter two&a=b",
                "postgres://h/db?password=***&a=b",
            ),
            (
                "postgres://h/db?PASSWORD=hunter2",
                "postgres://h/db?PASSWORD=***",
            ),
        ] {
            assert_eq!(mask_url(url), shown, "{url}");
            // Parsed, it shows the same.
            if let Ok(parsed) = parse(url) {
                assert_eq!(parsed.shown, shown, "{url}");
            }
        }
        assert_eq!(
            mask("invalid type: string \"postgres://a:SEK RIT@h/d\", expected u32"),
            "invalid type: string \"postgres://a:***@h/d\", expected u32"
        );
        assert_eq!(
            mask("store = \"postgres://a:SEK'RIT@h/d"),
            "store = \"postgres://a:***@h/d"
        );
        assert_eq!(
            mask("string \"postgres://h/d?password=pa ss&x=1\", expected u32"),
            "string \"postgres://h/d?password=***&x=1\", expected u32"
        );
        // An error about a URL with a port, and an `@` later on its line:
        // not taken for a user part.
        let refused = "postgres://127.0.0.1:5432/test?user=ana%40corp: the server refused \
                       the credentials of user \"ana@corp\": role \"ana@corp\" does not exist";
        assert_eq!(mask(refused), refused);
        assert_eq!(
            mask("postgres://h/d?password=***: refused"),
            "postgres://h/d?password=***: refused"
        );
        assert_eq!(
            mask("host=h password='hunter two' user=u"),
            "host=h password=*** user=u"
        );
        assert_eq!(
            mask("store = \"postgres://ana:hunter2@127.0.0.1/test"),
            "store = \"postgres://ana:***@127.0.0.1/test"
        );
        for plain in [
            "postgres://ana@host/db",
            "postgres://host/db",
            "postgres:///db?host=/run/postgresql",
            "no url here",
            "old_password=x",
        ] {
            assert_eq!(mask(plain), plain);
        }
    }

    #[test]
    fn channel_binding_required_is_refused_before_any_connection() {
        let error = parse("postgres://u:pw@h/db?channel_binding=require").unwrap_err();
        assert!(error.contains("memchat does not offer"), "{error}");
        assert!(!error.contains("pw"), "{error}");
        assert!(parse("postgres://u:pw@h/db?channel_binding=prefer").is_ok());
    }

    #[test]
    fn tls_is_off_where_every_host_is_a_unix_domain_socket() {
        for url in [
            "postgres://ana@%2Fvar%2Frun%2Fpostgresql/db?sslmode=verify-full",
            "postgres:///db?user=ana&host=/tmp&sslmode=require",
        ] {
            let parsed = parse(url).unwrap();
            assert_eq!(parsed.ssl, SslMode::Disable, "{url}");
            assert_eq!(parsed.config.get_ssl_mode(), WireSslMode::Disable, "{url}");
        }
        // `host=` is a list; its empty entries name nothing.
        let parsed =
            parse("postgres:///db?user=ana&host=/tmp,,%2Fvar%2Frun%2Fpg&sslmode=require").unwrap();
        assert_eq!(parsed.config.get_hosts().len(), 2);
        assert_eq!(parsed.ssl, SslMode::Disable);
        let parsed = parse("postgres:///db?user=ana&host=/tmp,db.example").unwrap();
        assert_eq!(parsed.config.get_hosts().len(), 2);
        assert_eq!(
            parsed.ssl,
            SslMode::Prefer,
            "a TCP host in the list keeps sslmode"
        );
        // A TCP host keeps what the URL asks for.
        let parsed = parse("postgres://ana@db.example/db?sslmode=verify-full").unwrap();
        assert_eq!(parsed.ssl, SslMode::VerifyFull);
    }

    #[test]
    fn without_a_host_pghost_then_a_socket_then_localhost() {
        use tokio_postgres::config::Host;
        let hosts = |pghost: Option<&str>, socket_in: Option<&str>, port: Option<u16>| {
            let mut config = tokio_postgres::Config::new();
            if let Some(port) = port {
                config.port(port);
            }
            default_host(&mut config, pghost, |socket| {
                socket_in.is_some_and(|dir| socket.starts_with(dir))
                    && socket.ends_with(format!(".s.PGSQL.{}", port.unwrap_or(5432)))
            });
            config.get_hosts().to_vec()
        };
        let tcp = |h: &str| Host::Tcp(h.to_string());
        let unix = |p: &str| Host::Unix(p.into());
        assert_eq!(
            hosts(Some("db1,,db2"), Some("/tmp"), None),
            [tcp("db1"), tcp("db2")]
        );
        assert_eq!(hosts(Some(""), Some("/tmp"), None), [unix("/tmp")]);
        assert_eq!(
            hosts(None, Some("/var/run/postgresql"), Some(5433)),
            [unix("/var/run/postgresql")]
        );
        assert_eq!(hosts(None, None, None), [tcp("localhost")]);
    }

    #[test]
    fn sslmode_is_read_by_memchat_and_the_rest_by_tokio_postgres() {
        let url =
            parse("postgres://ana:pw@127.0.0.1:6543/chat?sslmode=verify-full&connect_timeout=3")
                .unwrap();
        assert_eq!(url.ssl, SslMode::VerifyFull);
        assert_eq!(url.config.get_ssl_mode(), WireSslMode::Require);
        assert_eq!(url.config.get_ports(), [6543]);
        assert_eq!(url.config.get_dbname(), Some("chat"));
        assert_eq!(url.config.get_password(), Some(&b"pw"[..]));
        assert_eq!(
            url.config.get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );
        assert_eq!(
            url.shown,
            "postgres://ana:***@127.0.0.1:6543/chat?sslmode=verify-full&connect_timeout=3"
        );
        assert!(
            !format!("{url:?}").contains("pw@"),
            "Debug hides the password"
        );

        let url =
            parse("postgresql://ana@h/db?sslrootcert=%2Fetc%2Fca.pem&sslmode=verify-ca").unwrap();
        assert_eq!(url.roots, Roots::File("/etc/ca.pem".into()));
        assert_eq!(url.ssl, SslMode::VerifyCa);
        let url = parse("postgres://ana@h/db").unwrap();
        assert_eq!(
            (url.ssl, url.config.get_connect_timeout()),
            (SslMode::Prefer, Some(&CONNECT_TIMEOUT))
        );
        assert_eq!(
            parse("postgres://ana@h/db?sslmode=disable").unwrap().ssl,
            SslMode::Disable
        );
        assert_eq!(
            parse("postgres://ana@h/db?sslmode=allow").unwrap().ssl,
            SslMode::Prefer
        );
    }

    #[test]
    fn a_bad_url_is_an_error_that_never_shows_the_password() {
        for bad in [
            "postgres://ana:topsecret@h/db?sslmode=sometimes",
            "postgres://ana:topsecret@h:notaport/db",
            "postgres://ana:topsecret@h/db?nosuchoption=1",
            "mysql://ana:topsecret@h/db",
        ] {
            let error = parse(bad).unwrap_err();
            assert!(!error.contains("topsecret"), "{error}");
            assert!(
                !error.contains("ana:"),
                "the reason alone: the caller names the URL once: {error}"
            );
        }
    }

    /// Every setting tokio-postgres reads from a URL, set away from its
    /// default: a per-host attempt must carry each of them.
    const EVERY_SETTING: &str = "user=u&password=pw&dbname=d&options=-cx%3Dy&application_name=a\
        &sslmode=require&sslnegotiation=direct&connect_timeout=7&tcp_user_timeout=9000\
        &keepalives=0&keepalives_idle=11&keepalives_interval=12&keepalives_retries=13\
        &target_session_attrs=read-write&channel_binding=require";

    #[test]
    fn a_host_list_is_one_attempt_per_host_with_every_setting() {
        let one: tokio_postgres::Config = format!("postgres://h1:5433/?{EVERY_SETTING}")
            .parse()
            .unwrap();
        assert_eq!(
            attempts(&one),
            std::slice::from_ref(&one),
            "one host: as it is"
        );
        let mut rebuilt = settings_without_hosts(&one);
        rebuilt.host("h1").port(5433);
        assert!(rebuilt == one, "a setting was lost: {rebuilt:?} vs {one:?}");

        let list: tokio_postgres::Config =
            format!("postgres://h1:5433,h2:5434/?{EVERY_SETTING}&hostaddr=10.0.0.1,10.0.0.2")
                .parse()
                .unwrap();
        let tries = attempts(&list);
        assert_eq!(tries.len(), 2);
        for (i, (host, port)) in [("h1", 5433), ("h2", 5434)].into_iter().enumerate() {
            let mut expected = settings_without_hosts(&list);
            expected
                .host(host)
                .hostaddr(format!("10.0.0.{}", i + 1).parse().unwrap())
                .port(port);
            assert!(tries[i] == expected, "attempt {i}: {:?}", tries[i]);
        }
        // One port for every host (a URL's `host=` list, or PGPORT).
        let mut shared = tokio_postgres::Config::new();
        shared.host("h1").host("h2").port(6000);
        assert!(attempts(&shared).iter().all(|a| a.get_ports() == [6000]));
        assert_eq!(
            attempts(&shared)[1].get_hosts(),
            [tokio_postgres::config::Host::Tcp("h2".into())]
        );
    }

    #[test]
    fn a_socket_in_a_list_is_tried_without_tls() {
        let parsed = parse("postgres://u@/d?host=/run/pg,db.example&sslmode=require").unwrap();
        let tries = attempts(&parsed.config);
        assert_eq!(tries.len(), 2);
        assert_eq!(tries[0].get_ssl_mode(), WireSslMode::Disable);
        assert_eq!(tries[1].get_ssl_mode(), WireSslMode::Require);
    }

    #[test]
    fn what_tokio_postgres_shuffles_or_refuses_stays_one_attempt() {
        for url in [
            "postgres://h1,h2/d?load_balance_hosts=random",
            "postgres://h1:1,h2:2,h3:3/d?hostaddr=10.0.0.1",
            "postgres://h1,h2,h3/d?port=1,2",
        ] {
            let config: tokio_postgres::Config = url.parse().unwrap();
            assert_eq!(attempts(&config), std::slice::from_ref(&config), "{url}");
        }
    }
}
