//! Splitting a migration file into statements, the way `psql` does.
//!
//! The lexer follows psql's own rules (`src/fe_utils/psqlscan.l`): a `;`
//! ends a statement only outside quotes, comments, dollar-quoted bodies and
//! SQL-standard `BEGIN ATOMIC ... END` function bodies. Each statement keeps
//! the 1-based line of its first token, so findings can point at `file:line`.

use super::Statement;

/// Why a file could not be split. The caller adds the file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SplitError {
    /// A quote, dollar quote or block comment opened on `line` never closes.
    Unterminated { what: &'static str, line: usize },
}

/// Splits `text` into statements. Comment-only pieces are dropped; the line
/// of each statement is counted from `first_line` (1 for a whole file).
pub(crate) fn split_statements(
    text: &str,
    first_line: usize,
) -> Result<Vec<Statement>, SplitError> {
    let bytes = text.as_bytes();
    let mut statements = Vec::new();
    let mut line = first_line;
    let mut i = 0;
    // Start of the current statement's first token, and its line.
    let mut start: Option<(usize, usize)> = None;
    // Depth of BEGIN ATOMIC bodies (CASE ... END nests inside them).
    let mut atomic_depth = 0usize;
    // Parenthesis depth: psql does not end a statement inside parentheses
    // (multi-action rules: `DO ALSO (INSERT ...; UPDATE ...)`).
    let mut paren_depth = 0usize;
    // The previous identifier-like word, to see `BEGIN ATOMIC`.
    let mut prev_word = String::new();

    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                // Block comments nest in PostgreSQL, unlike the SQL standard.
                let open_line = line;
                let mut depth = 0usize;
                loop {
                    if i >= bytes.len() {
                        return Err(SplitError::Unterminated {
                            what: "block comment",
                            line: open_line,
                        });
                    }
                    if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        if bytes[i] == b'\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            b';' if atomic_depth == 0 && paren_depth == 0 => {
                if let Some((s, l)) = start.take() {
                    statements.push(Statement {
                        sql: text[s..i].trim().to_string(),
                        line: l,
                    });
                }
                prev_word.clear();
                i += 1;
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                if start.is_none() {
                    start = Some((i, line));
                }
                let token_line = line;
                match c {
                    b'\'' => {
                        // E'...' strings take backslash escapes; '' is a quote
                        // in every kind of string literal.
                        let escapes = i > 0
                            && matches!(bytes[i - 1], b'e' | b'E')
                            && (i < 2 || !is_ident_byte(bytes[i - 2]));
                        i = skip_quoted(bytes, i, b'\'', escapes, &mut line).ok_or(
                            SplitError::Unterminated {
                                what: "string literal",
                                line: token_line,
                            },
                        )?;
                        prev_word.clear();
                    }
                    b'"' => {
                        i = skip_quoted(bytes, i, b'"', false, &mut line).ok_or(
                            SplitError::Unterminated {
                                what: "quoted identifier",
                                line: token_line,
                            },
                        )?;
                        prev_word.clear();
                    }
                    b'$' => {
                        if let Some(tag_len) = dollar_tag_len(bytes, i) {
                            let tag = &bytes[i..i + tag_len];
                            let mut j = i + tag_len;
                            loop {
                                if j >= bytes.len() {
                                    return Err(SplitError::Unterminated {
                                        what: "dollar-quoted string",
                                        line: token_line,
                                    });
                                }
                                if bytes[j..].starts_with(tag) {
                                    j += tag_len;
                                    break;
                                }
                                if bytes[j] == b'\n' {
                                    line += 1;
                                }
                                j += 1;
                            }
                            i = j;
                        } else {
                            // A positional parameter like $1.
                            i += 1;
                        }
                        prev_word.clear();
                    }
                    c if is_ident_start(c) => {
                        let s = i;
                        while i < bytes.len() && is_ident_byte(bytes[i]) {
                            i += 1;
                        }
                        let word = text[s..i].to_ascii_lowercase();
                        // `BEGIN ATOMIC` opens a body; inside one, CASE ... END
                        // nests like psql's lexer counts it.
                        let opens = (word == "atomic" && prev_word == "begin")
                            || (atomic_depth > 0 && word == "case");
                        if opens {
                            atomic_depth += 1;
                        } else if atomic_depth > 0 && word == "end" {
                            atomic_depth -= 1;
                        }
                        prev_word = word;
                    }
                    b'(' => {
                        paren_depth += 1;
                        i += 1;
                        prev_word.clear();
                    }
                    b')' => {
                        paren_depth = paren_depth.saturating_sub(1);
                        i += 1;
                        prev_word.clear();
                    }
                    _ => {
                        // Multi-byte UTF-8 sequences and punctuation: step one
                        // whole character so slicing stays on boundaries.
                        i += text[i..].chars().next().map_or(1, char::len_utf8);
                        prev_word.clear();
                    }
                }
            }
        }
    }
    if let Some((s, l)) = start {
        let sql = text[s..].trim();
        if !sql.is_empty() {
            statements.push(Statement {
                sql: sql.to_string(),
                line: l,
            });
        }
    }
    Ok(statements)
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Skips a quoted token starting at `i`; returns the index after it.
fn skip_quoted(
    bytes: &[u8],
    i: usize,
    quote: u8,
    escapes: bool,
    line: &mut usize,
) -> Option<usize> {
    let mut j = i + 1;
    while j < bytes.len() {
        let b = bytes[j];
        if b == b'\n' {
            *line += 1;
        }
        if escapes && b == b'\\' {
            if bytes.get(j + 1) == Some(&b'\n') {
                *line += 1;
            }
            j += 2;
            continue;
        }
        if b == quote {
            if bytes.get(j + 1) == Some(&quote) {
                j += 2;
                continue;
            }
            return Some(j + 1);
        }
        j += 1;
    }
    None
}

/// Length of a dollar-quote opening tag (`$$` or `$tag$`) at `i`, if any.
/// A tag follows identifier rules but may not start with a digit.
fn dollar_tag_len(bytes: &[u8], i: usize) -> Option<usize> {
    // `a$1` or `x$$`: a dollar inside an identifier does not open a quote.
    if i > 0 && is_ident_byte(bytes[i - 1]) {
        return None;
    }
    let mut j = i + 1;
    if bytes.get(j) == Some(&b'$') {
        return Some(2);
    }
    if !bytes.get(j).is_some_and(|&c| is_ident_start(c)) {
        return None;
    }
    while j < bytes.len()
        && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_' || bytes[j] >= 0x80)
    {
        j += 1;
    }
    (bytes.get(j) == Some(&b'$')).then_some(j + 1 - i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<(String, usize)> {
        split_statements(text, 1)
            .unwrap()
            .into_iter()
            .map(|s| (s.sql, s.line))
            .collect()
    }

    #[test]
    fn plain_statements_keep_their_first_line() {
        let got = split("CREATE TABLE a (id int);\n\n-- c\nCREATE TABLE b (\n id int\n);\n");
        assert_eq!(
            got,
            vec![
                ("CREATE TABLE a (id int)".into(), 1),
                ("CREATE TABLE b (\n id int\n)".into(), 4)
            ]
        );
    }

    #[test]
    fn semicolons_in_strings_comments_and_identifiers_do_not_split() {
        let got = split(
            "INSERT INTO t VALUES ('a;b', 'it''s;'); /* x; /* nested; */ still; */\n\
             SELECT \"we;ird\"\"id\" FROM t; -- trailing; comment\nSELECT E'\\';', 1;",
        );
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].0, "INSERT INTO t VALUES ('a;b', 'it''s;')");
        // Leading comments belong to no statement; the line is the first token's.
        assert_eq!(got[1], ("SELECT \"we;ird\"\"id\" FROM t".into(), 2));
        assert_eq!(got[2], ("SELECT E'\\';', 1".into(), 3));
    }

    #[test]
    fn dollar_quotes_with_and_without_tags() {
        let text = "CREATE FUNCTION f() RETURNS int AS $fn$\nBEGIN\n  PERFORM $$;$$;\n  RETURN 1;\nEND\n$fn$ LANGUAGE plpgsql;\nSELECT $1, a$b FROM t;";
        let got = split(text);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].0.ends_with("$fn$ LANGUAGE plpgsql"));
        assert_eq!(got[1], ("SELECT $1, a$b FROM t".into(), 7));
    }

    #[test]
    fn begin_atomic_bodies_stay_whole() {
        let text = "CREATE FUNCTION g(x int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\n  SELECT 2;\nEND;\nSELECT 3;";
        let got = split(text);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].0.ends_with("END"));
        assert_eq!(got[1], ("SELECT 3".into(), 6));
    }

    #[test]
    fn semicolons_inside_parentheses_do_not_split() {
        let got = split(
            "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2));\nSELECT 1;",
        );
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[1], ("SELECT 1".into(), 2));
    }

    #[test]
    fn plain_begin_transaction_is_not_an_atomic_body() {
        assert_eq!(split("BEGIN; SELECT 1; COMMIT;").len(), 3);
    }

    #[test]
    fn unterminated_tokens_report_their_opening_line() {
        for (text, what, line) in [
            ("SELECT 1;\nSELECT 'abc", "string literal", 2),
            ("SELECT 1;\n\nSELECT \"abc", "quoted identifier", 3),
            ("SELECT $x$ abc", "dollar-quoted string", 1),
            ("SELECT 1; /* /* */", "block comment", 1),
        ] {
            assert_eq!(
                split_statements(text, 1),
                Err(SplitError::Unterminated { what, line })
            );
        }
    }

    #[test]
    fn comment_only_input_yields_nothing_and_offsets_apply() {
        assert!(split("-- nothing\n/* here */\n").is_empty());
        let got = split_statements("\nSELECT 1", 10).unwrap();
        assert_eq!(got[0].line, 11);
    }

    #[test]
    fn non_ascii_text_is_kept() {
        let got = split("INSERT INTO t VALUES ('é;ü'); SELECT 'ß' AS größe;");
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].0, "SELECT 'ß' AS größe");
    }
}
