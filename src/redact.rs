//! Passwords never reach output or a report: every string a renderer writes
//! passes through [`scrub`] first, and traced SQL through [`redact_sql`].
//!
//! The harness already prints only password-free URLs
//! (`ConnInfo::display_url`), but reports also carry text from elsewhere: a
//! user's migration tool output, a driver error quoting a connection string.
//! This is the last line of defence.

/// Replaces the password of every `scheme://user:password@host` URL with
/// nothing (leaving `scheme://user@host`), the value of every libpq
/// `password=...` or `PGPASSWORD=...` setting with `[redacted]`, and the
/// literal after every SQL `PASSWORD` ([`redact_sql`]).
#[must_use]
pub fn scrub(text: &str) -> String {
    redact_sql(&scrub_keywords(&scrub_urls(text)))
}

/// Replaces the string literal following the word `PASSWORD` in SQL with
/// `'[redacted]'`: `CREATE ROLE ... PASSWORD 'x'`, `ALTER USER ... WITH
/// ENCRYPTED PASSWORD E'x'`, `PASSWORD $$x$$`, and a user mapping's
/// `OPTIONS (password 'x')` (manual, CREATE ROLE and CREATE USER MAPPING).
/// `PASSWORD NULL` and the word elsewhere stay as they are. Migrations
/// that create roles are quoted in traces, findings and reports; their
/// passwords must not be.
#[must_use]
pub fn redact_sql(sql: &str) -> String {
    const WORD: &str = "password";
    let lower = sql.to_ascii_lowercase();
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find(WORD) {
        let start = search + found;
        let after_word = start + WORD.len();
        search = after_word;
        let is_word_char = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        if (start > 0 && is_word_char(bytes[start - 1]))
            || bytes.get(after_word).is_some_and(|b| is_word_char(*b))
        {
            continue;
        }
        let mut at = after_word;
        while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        }
        let Some(end) = literal_end(sql, at) else {
            continue;
        };
        out.push_str(&sql[copied..at]);
        out.push_str("'[redacted]'");
        copied = end;
        search = end;
    }
    out.push_str(&sql[copied..]);
    out
}

/// The end (exclusive) of the SQL string literal starting at `at`: `'...'`
/// with `''` escapes, `E'...'` with backslash escapes too, or `$tag$...$tag$`.
/// `None` when no literal starts there (an unterminated one runs to the end).
fn literal_end(sql: &str, at: usize) -> Option<usize> {
    let rest = sql.get(at..)?;
    let (body, escapes, offset) = if let Some(body) = rest.strip_prefix('\'') {
        (body, false, 1)
    } else if let Some(body) = rest.strip_prefix("E'").or_else(|| rest.strip_prefix("e'")) {
        (body, true, 2)
    } else if let Some(after_dollar) = rest.strip_prefix('$') {
        let close = after_dollar.find('$')? + 1;
        let tag = &rest[..=close];
        if !tag[1..tag.len() - 1]
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_')
        {
            return None;
        }
        let end = rest[tag.len()..]
            .find(tag)
            .map_or(rest.len(), |i| tag.len() + i + tag.len());
        return Some(at + end);
    } else {
        return None;
    };
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if escapes => {
                chars.next();
            }
            '\'' => {
                if chars.peek().is_some_and(|(_, next)| *next == '\'') {
                    chars.next();
                } else {
                    return Some(at + offset + i + 1);
                }
            }
            _ => {}
        }
    }
    Some(sql.len())
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
    fn sql_passwords_go() {
        use super::redact_sql;
        assert_eq!(
            redact_sql("CREATE ROLE app LOGIN PASSWORD 'hunter''2';"),
            "CREATE ROLE app LOGIN PASSWORD '[redacted]';"
        );
        assert_eq!(
            redact_sql("alter user x with encrypted password E'a\\'b' valid until 'x'"),
            "alter user x with encrypted password '[redacted]' valid until 'x'"
        );
        assert_eq!(
            redact_sql("CREATE ROLE a PASSWORD $p$s'ecret$p$ LOGIN"),
            "CREATE ROLE a PASSWORD '[redacted]' LOGIN"
        );
        assert_eq!(
            redact_sql("OPTIONS (user 'u', password 'pw')"),
            "OPTIONS (user 'u', password '[redacted]')"
        );
        for unchanged in [
            "ALTER ROLE a PASSWORD NULL",
            "SELECT password_hash FROM users",
            "UPDATE users SET password = 'x'",
        ] {
            assert_eq!(redact_sql(unchanged), unchanged);
        }
        assert_eq!(
            super::scrub("CREATE ROLE r PASSWORD 'canary'"),
            "CREATE ROLE r PASSWORD '[redacted]'"
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
