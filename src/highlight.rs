//! Light syntax highlighting of fenced code blocks on the terminal:
//! comments, strings, numbers and common keywords, one line at a time.
//!
//! Comment syntax follows the fence's language (` ```python ` → `#`,
//! ` ```sql ` → `--`, ` ```rust ` → `//` and `/* */`), because the same
//! characters mean different things elsewhere: `--` is a decrement in C and
//! `#` an attribute in Rust. A block without a language, or with one not in
//! the table, gets no comment styling rather than a wrong guess. A block
//! comment may span lines, so a [`Highlighter`] lives as long as its block.

use anstyle::{AnsiColor, Effects, Style};

pub const KEYWORD: Style = AnsiColor::Magenta.on_default();
pub const STRING: Style = AnsiColor::Green.on_default();
pub const NUMBER: Style = AnsiColor::Cyan.on_default();
pub const COMMENT: Style = AnsiColor::White.on_default().effects(Effects::DIMMED);

/// Words styled as keywords in any language: a short list common to many,
/// enough to give code some shape without a grammar per language.
const KEYWORDS: &[&str] = &[
    "as",
    "async",
    "await",
    "break",
    "case",
    "class",
    "const",
    "continue",
    "def",
    "defer",
    "do",
    "elif",
    "else",
    "enum",
    "export",
    "extern",
    "false",
    "fn",
    "for",
    "from",
    "func",
    "function",
    "go",
    "if",
    "impl",
    "import",
    "in",
    "interface",
    "let",
    "loop",
    "match",
    "mod",
    "mut",
    "new",
    "nil",
    "None",
    "null",
    "package",
    "pub",
    "return",
    "self",
    "Self",
    "static",
    "struct",
    "switch",
    "trait",
    "true",
    "True",
    "False",
    "try",
    "type",
    "use",
    "var",
    "where",
    "while",
    "with",
    "yield",
    "fi",
    "then",
    "done",
    "echo",
];

/// How a language writes comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommentSyntax {
    /// Markers that comment out the rest of the line.
    pub line: &'static [&'static str],
    /// Opening and closing markers of block comments.
    pub block: &'static [(&'static str, &'static str)],
}

const HASH: CommentSyntax = CommentSyntax {
    line: &["#"],
    block: &[],
};
const DASHES: CommentSyntax = CommentSyntax {
    line: &["--"],
    block: &[],
};
const C_FAMILY: CommentSyntax = CommentSyntax {
    line: &["//"],
    block: &[("/*", "*/")],
};

impl CommentSyntax {
    /// The comment syntax of a fence's language (its first word, any case);
    /// none for an unknown or missing language.
    pub fn for_language(language: &str) -> CommentSyntax {
        match language.to_ascii_lowercase().as_str() {
            "python" | "py" | "python3" | "sh" | "bash" | "zsh" | "shell" | "console" | "fish"
            | "ruby" | "rb" | "perl" | "pl" | "yaml" | "yml" | "toml" | "r" | "make"
            | "makefile" | "dockerfile" | "nix" | "elixir" | "ex" | "exs" | "julia" | "jl"
            | "tcl" | "awk" | "cmake" | "graphql" | "gql" | "nim" | "crystal" | "cr" | "conf" => {
                HASH
            }
            "powershell" | "ps1" | "pwsh" => CommentSyntax {
                line: &["#"],
                block: &[("<#", "#>")],
            },
            "sql" | "mysql" | "postgres" | "postgresql" | "psql" | "plsql" | "sqlite" | "tsql" => {
                CommentSyntax {
                    line: &["--"],
                    block: &[("/*", "*/")],
                }
            }
            "lua" => CommentSyntax {
                line: &["--"],
                block: &[("--[[", "]]")],
            },
            "haskell" | "hs" | "elm" | "purescript" => CommentSyntax {
                line: &["--"],
                block: &[("{-", "-}")],
            },
            "ada" | "vhdl" => DASHES,
            "c" | "h" | "cpp" | "c++" | "cc" | "cxx" | "hpp" | "rust" | "rs" | "js"
            | "javascript" | "jsx" | "mjs" | "ts" | "typescript" | "tsx" | "go" | "golang"
            | "java" | "kotlin" | "kt" | "swift" | "scala" | "cs" | "csharp" | "c#" | "dart"
            | "groovy" | "gradle" | "zig" | "jsonc" | "json5" | "scss" | "less" | "solidity"
            | "sol" | "proto" | "protobuf" | "objc" | "objective-c" | "glsl" | "hlsl" | "wgsl"
            | "verilog" | "v" => C_FAMILY,
            "php" => CommentSyntax {
                line: &["//", "#"],
                block: &[("/*", "*/")],
            },
            "css" => CommentSyntax {
                line: &[],
                block: &[("/*", "*/")],
            },
            "html" | "xml" | "svg" | "xhtml" | "markdown" | "md" | "vue" => CommentSyntax {
                line: &[],
                block: &[("<!--", "-->")],
            },
            "lisp" | "clojure" | "clj" | "scheme" | "elisp" | "emacs-lisp" | "racket" | "asm"
            | "nasm" | "ini" => CommentSyntax {
                line: &[";"],
                block: &[],
            },
            "tex" | "latex" | "erlang" | "erl" | "matlab" | "octave" | "prolog" => CommentSyntax {
                line: &["%"],
                block: &[],
            },
            _ => CommentSyntax::default(),
        }
    }
}

/// Highlights the lines of one code block in order.
#[derive(Debug, Clone)]
pub struct Highlighter {
    syntax: CommentSyntax,
    /// The closing marker of a block comment still open at the line's end.
    open_block: Option<&'static str>,
}

impl Highlighter {
    /// A highlighter for a block whose fence named `language` (may be empty).
    pub fn new(language: &str) -> Self {
        Highlighter {
            syntax: CommentSyntax::for_language(language),
            open_block: None,
        }
    }

    /// One line (without its `\n`), with escape codes added.
    pub fn line(&mut self, line: &str) -> String {
        let mut out = String::new();
        let mut i = 0;
        if let Some(close) = self.open_block {
            match line.find(close) {
                Some(at) => {
                    i = at + close.len();
                    styled(&mut out, COMMENT, &line[..i]);
                    self.open_block = None;
                }
                None => {
                    styled(&mut out, COMMENT, line);
                    return out;
                }
            }
        }
        while let Some(c) = line[i..].chars().next() {
            let rest = &line[i..];
            if let Some(&(open, close)) =
                self.syntax.block.iter().find(|(o, _)| rest.starts_with(o))
            {
                match rest[open.len()..].find(close) {
                    Some(at) => {
                        let end = open.len() + at + close.len();
                        styled(&mut out, COMMENT, &rest[..end]);
                        i += end;
                        continue;
                    }
                    None => {
                        styled(&mut out, COMMENT, rest);
                        self.open_block = Some(close);
                        break;
                    }
                }
            }
            if self.line_comment_at(line, i) {
                styled(&mut out, COMMENT, rest);
                break;
            }
            let len = if c == '"' || c == '\'' {
                let len = string_len(rest, c);
                styled(&mut out, STRING, &rest[..len]);
                len
            } else if c.is_ascii_alphanumeric() || c == '_' {
                let len = rest
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                    .unwrap_or(rest.len());
                let word = &rest[..len];
                if c.is_ascii_digit() {
                    styled(&mut out, NUMBER, word);
                } else if KEYWORDS.contains(&word) {
                    styled(&mut out, KEYWORD, word);
                } else {
                    out.push_str(word);
                }
                len
            } else {
                out.push(c);
                c.len_utf8()
            };
            i += len;
        }
        out
    }

    /// Whether a line comment starts at byte `i`. `#` counts only at the
    /// start of a word (`$#` in shell, `a#b` in a URL are not comments).
    fn line_comment_at(&self, line: &str, i: usize) -> bool {
        self.syntax.line.iter().any(|marker| {
            line[i..].starts_with(marker)
                && (*marker != "#"
                    || line[..i]
                        .chars()
                        .next_back()
                        .is_none_or(char::is_whitespace))
        })
    }
}

/// The byte length of the string literal opening `rest` with `quote`, up to
/// and including its closing quote or the line's end; `\` escapes a char.
fn string_len(rest: &str, quote: char) -> usize {
    let mut chars = rest.char_indices().skip(1);
    while let Some((at, c)) = chars.next() {
        if c == '\\' {
            chars.next();
        } else if c == quote {
            return at + c.len_utf8();
        }
    }
    rest.len()
}

fn styled(out: &mut String, style: Style, text: &str) {
    out.push_str(&format!("{style}{text}{style:#}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comment(text: &str) -> String {
        format!("{COMMENT}{text}{COMMENT:#}")
    }

    fn lines(language: &str, code: &[&str]) -> Vec<String> {
        let mut h = Highlighter::new(language);
        code.iter().map(|l| h.line(l)).collect()
    }

    #[test]
    fn hash_comments_only_where_the_language_has_them() {
        let py = lines("python", &["x = 1  # note"]);
        assert!(py[0].ends_with(&comment("# note")), "{py:?}");
        // A Rust attribute and a C preprocessor line are not comments.
        for lang in ["rust", "c", "", "unknown-lang"] {
            let out = lines(lang, &["#[derive(Debug)] # x"]);
            assert!(!out[0].contains(&COMMENT.to_string()), "{lang}: {out:?}");
        }
        // `$#` in shell is a parameter, not a comment.
        let sh = lines("sh", &["echo $# args # count"]);
        assert!(sh[0].contains("$#"));
        assert!(sh[0].ends_with(&comment("# count")), "{sh:?}");
    }

    #[test]
    fn double_dashes_are_comments_in_sql_lua_haskell_only() {
        for lang in ["sql", "SQL", "lua", "haskell"] {
            let out = lines(lang, &["select 1 -- one"]);
            assert!(out[0].ends_with(&comment("-- one")), "{lang}: {out:?}");
        }
        for lang in ["c", "js", "python", ""] {
            let out = lines(lang, &["i-- -- x"]);
            assert!(!out[0].contains(&COMMENT.to_string()), "{lang}: {out:?}");
        }
    }

    #[test]
    fn c_family_has_line_and_block_comments_across_lines() {
        let out = lines(
            "rust",
            &[
                "let a = 1; // one",
                "/* start",
                "still */ let b = 2;",
                "x /* inline */ y",
            ],
        );
        assert!(out[0].ends_with(&comment("// one")));
        assert_eq!(out[1], comment("/* start"));
        assert!(out[2].starts_with(&comment("still */")));
        assert!(out[2].contains(&format!("{KEYWORD}let{KEYWORD:#}")));
        assert_eq!(out[3], format!("x {} y", comment("/* inline */")));
        // A `//` in Python is floor division.
        let py = lines("python", &["a = b // 2"]);
        assert!(!py[0].contains(&COMMENT.to_string()), "{py:?}");
    }

    #[test]
    fn lua_and_haskell_block_comments() {
        let lua = lines("lua", &["--[[ a", "b ]] x = 1"]);
        assert_eq!(lua[0], comment("--[[ a"));
        assert!(lua[1].starts_with(&comment("b ]]")));
        let hs = lines("haskell", &["{- doc -} main = 1"]);
        assert!(hs[0].starts_with(&comment("{- doc -}")));
    }

    #[test]
    fn comment_markers_inside_strings_are_strings() {
        let out = lines("python", &[r##"print("# not \" a comment")  # real"##]);
        let literal = r##""# not \" a comment""##;
        assert!(
            out[0].contains(&format!("{STRING}{literal}{STRING:#}")),
            "{out:?}"
        );
        assert!(out[0].ends_with(&comment("# real")));
    }

    #[test]
    fn words_numbers_and_text_survive() {
        let line = "fn main() { let x = \"hé\"; 42 } 🦀";
        let out = lines("rust", &[line]);
        assert!(out[0].contains(&format!("{NUMBER}42{NUMBER:#}")));
        assert!(out[0].contains(&format!("{KEYWORD}fn{KEYWORD:#}")));
        let plain: String = anstream::adapter::strip_str(&out[0]).to_string();
        assert_eq!(plain, line);
    }
}
