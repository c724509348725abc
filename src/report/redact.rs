//! Passwords never reach a report (issue 7): every string a renderer writes
//! passes through [`scrub`] first.
//!
//! The harness already prints only password-free URLs
//! (`ConnInfo::display_url`), but reports also carry text from elsewhere: a
//! user's migration tool output, a driver error quoting a connection string.
//! This is the last line of defence.

/// Replaces the password of every `scheme://user:password@host` URL with
/// nothing (leaving `scheme://user@host`) and the value of every libpq
/// `password=...` or `PGPASSWORD=...` setting with `[redacted]`.
#[must_use]
pub fn scrub(text: &str) -> String {
    scrub_keywords(&scrub_urls(text))
}

fn scrub_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#' or whitespace; the
        // userinfo is what precedes its last '@' (RFC 3986, section 3.2).
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at_sign) => {
                let userinfo = &authority[..at_sign];
                let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
                out.push_str(user);
                out.push_str(&authority[at_sign..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn scrub_keywords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let lower = rest.to_ascii_lowercase();
        // `pgpassword=` contains `password=`: finding the latter covers both.
        let Some(at) = lower.find("password=") else {
            break;
        };
        let value_start = at + "password=".len();
        out.push_str(&rest[..value_start]);
        let value = &rest[value_start..];
        let end = if let Some(quoted) = value.strip_prefix('\'') {
            quoted.find('\'').map_or(value.len(), |i| i + 2)
        } else {
            value
                .find(|c: char| c.is_whitespace() || matches!(c, '&' | ',' | '"' | ')' | ';'))
                .unwrap_or(value.len())
        };
        if end > 0 {
            out.push_str("[redacted]");
        }
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

/// [`scrub`] applied to every string inside a JSON value.
pub fn scrub_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => *s = scrub(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(scrub_json),
        serde_json::Value::Object(map) => map.values_mut().for_each(scrub_json),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::scrub;

    #[test]
    fn url_passwords_go_and_the_rest_stays() {
        assert_eq!(
            scrub("cannot connect to postgres://app:s3cr:et@db.internal:5432/x?sslmode=require"),
            "cannot connect to postgres://app@db.internal:5432/x?sslmode=require"
        );
        assert_eq!(
            scrub("postgres://postgres@127.0.0.1:5432/db"),
            "postgres://postgres@127.0.0.1:5432/db"
        );
        assert_eq!(
            scrub("see https://www.postgresql.org/docs/"),
            "see https://www.postgresql.org/docs/"
        );
    }

    #[test]
    fn keyword_passwords_go() {
        assert_eq!(
            scrub("host=x password=hunter2 user=y"),
            "host=x password=[redacted] user=y"
        );
        assert_eq!(
            scrub("PGPASSWORD=hunter2 psql"),
            "PGPASSWORD=[redacted] psql"
        );
        assert_eq!(scrub("password='a b' user=y"), "password=[redacted] user=y");
        assert_eq!(scrub("(password=x)"), "(password=[redacted])");
        assert_eq!(scrub("no password= here"), "no password= here");
    }
}
