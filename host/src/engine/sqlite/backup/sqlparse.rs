//! Reading SQL dumps quickly: splitting a stream of SQL text into complete
//! statements (the rules of SQLite's `sqlite3_complete`, so that a `;`
//! inside a string, a comment or a trigger body does not end a statement),
//! and parsing the literal values of the `INSERT` statements dumps are made
//! of, so the restore can bind them to one prepared statement per table
//! instead of having SQLite compile every row.

use std::io::{self, BufRead};

/// Tokens of the completeness state machine (see SQLite's `complete.c`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tok {
    Semi = 0,
    Ws = 1,
    Other = 2,
    Explain = 3,
    Create = 4,
    Temp = 5,
    Trigger = 6,
    End = 7,
}

/// States × tokens → next state. State 1 after a `;` means "a statement is
/// complete"; states 5 to 7 are inside `CREATE TRIGGER ... END`.
const TRANS: [[u8; 8]; 8] = [
    /* 0 invalid */ [1, 0, 2, 3, 4, 2, 2, 2],
    /* 1 start   */ [1, 1, 2, 3, 4, 2, 2, 2],
    /* 2 normal  */ [1, 2, 2, 2, 2, 2, 2, 2],
    /* 3 explain */ [1, 3, 3, 2, 4, 2, 2, 2],
    /* 4 create  */ [1, 4, 2, 2, 2, 4, 5, 2],
    /* 5 trigger */ [6, 5, 5, 5, 5, 5, 5, 5],
    /* 6 semi    */ [6, 6, 5, 5, 5, 5, 5, 7],
    /* 7 end     */ [1, 7, 5, 5, 5, 5, 5, 5],
];

/// Lexical state, kept across buffer refills.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lex {
    Normal,
    Word,
    Quote(u8),
    Bracket,
    Dash,
    LineComment,
    Slash,
    Block,
    BlockStar,
}

fn is_id_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Bytes that need attention in the fast path (inside a statement whose
/// keywords no longer matter).
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'\'' as usize] = true;
    t[b'"' as usize] = true;
    t[b'`' as usize] = true;
    t[b'[' as usize] = true;
    t[b'-' as usize] = true;
    t[b'/' as usize] = true;
    t[b';' as usize] = true;
    t
};

/// Why a dump's text could not be split into statements.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SplitError {
    /// Reading the stream failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A statement is longer than allowed.
    #[error("the statement starting at line {line} is longer than {limit} bytes")]
    TooLarge {
        /// The line where the statement starts.
        line: u64,
        /// The most bytes a statement may have.
        limit: usize,
    },
    /// The text ends inside a statement.
    #[error("the text ends inside the statement starting at line {line}")]
    Unfinished {
        /// The line where the statement starts.
        line: u64,
    },
    /// The text ends inside a `/*` comment: whatever follows it, a final
    /// `COMMIT` included, is not SQL (for SQLite, such a text is not
    /// complete).
    #[error("the text ends inside a comment that opens at line {line} and is never closed")]
    UnclosedComment {
        /// The line where the comment opens.
        line: u64,
    },
}

/// Splits SQL text into complete statements.
pub(crate) struct StatementReader<R> {
    inner: R,
    stmt: Vec<u8>,
    lex: Lex,
    state: u8,
    word: [u8; 9],
    word_len: usize,
    /// Offset in `stmt` of the first token that is not whitespace or a
    /// comment.
    first: Option<usize>,
    /// Line number at the start of `stmt`.
    line: u64,
    limit: usize,
}

impl<R: BufRead> StatementReader<R> {
    /// Reads statements from `inner`, refusing any longer than `limit`
    /// bytes.
    pub(crate) fn new(inner: R, limit: usize) -> Self {
        StatementReader {
            inner,
            stmt: Vec::with_capacity(64 * 1024),
            lex: Lex::Normal,
            state: 0,
            word: [0; 9],
            word_len: 0,
            first: None,
            line: 1,
            limit,
        }
    }

    /// The next complete statement (from its first token to its `;`) and
    /// the line it starts on; `None` at the end of the text (comments and
    /// whitespace after the last statement are ignored).
    pub(crate) fn next_statement(&mut self) -> Result<Option<(u64, &[u8])>, SplitError> {
        // Forget the previous statement.
        let newlines = memchr::memchr_iter(b'\n', &self.stmt).count() as u64;
        self.line += newlines;
        self.stmt.clear();
        self.first = None;
        loop {
            let buf = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if buf.is_empty() {
                // The end: flush a pending token, then see what is left.
                let in_comment = matches!(self.lex, Lex::Block | Lex::BlockStar);
                self.finish_token_at_eof();
                return match self.first {
                    None if in_comment => Err(SplitError::UnclosedComment {
                        line: self.line
                            + memchr::memchr_iter(
                                b'\n',
                                &self.stmt[..unclosed_comment_at(&self.stmt)],
                            )
                            .count() as u64,
                    }),
                    None => Ok(None),
                    Some(first) => Err(SplitError::Unfinished {
                        line: self.line
                            + memchr::memchr_iter(b'\n', &self.stmt[..first]).count() as u64,
                    }),
                };
            }
            let base = self.stmt.len();
            let (used, done) = scan(
                buf,
                base,
                &mut self.lex,
                &mut self.state,
                &mut self.word,
                &mut self.word_len,
                &mut self.first,
            );
            self.stmt.extend_from_slice(&buf[..used]);
            self.inner.consume(used);
            if done {
                let first = self.first.unwrap_or(0);
                if &self.stmt[first..] == b";" {
                    // An empty statement: skip it.
                    let newlines = memchr::memchr_iter(b'\n', &self.stmt).count() as u64;
                    self.line += newlines;
                    self.stmt.clear();
                    self.first = None;
                    continue;
                }
                let line =
                    self.line + memchr::memchr_iter(b'\n', &self.stmt[..first]).count() as u64;
                if self.stmt.len() - first > self.limit {
                    return Err(SplitError::TooLarge {
                        line,
                        limit: self.limit,
                    });
                }
                return Ok(Some((line, &self.stmt[first..])));
            }
            if self.stmt.len() > self.limit {
                let first = self.first.unwrap_or(0);
                let line =
                    self.line + memchr::memchr_iter(b'\n', &self.stmt[..first]).count() as u64;
                return Err(SplitError::TooLarge {
                    line,
                    limit: self.limit,
                });
            }
        }
    }

    fn finish_token_at_eof(&mut self) {
        let at = self.stmt.len();
        match self.lex {
            Lex::Word => {
                let tok = word_token(&self.word[..self.word_len.min(9)], self.word_len);
                feed(&mut self.state, &mut self.first, tok, at);
            }
            Lex::Dash | Lex::Slash => {
                feed(&mut self.state, &mut self.first, Tok::Other, at);
            }
            _ => {}
        }
        self.lex = Lex::Normal;
    }
}

/// Where, in `text` (whitespace and comments only, the last comment never
/// closed), that last comment opens.
fn unclosed_comment_at(text: &[u8]) -> usize {
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(b"--") {
            i = memchr::memchr(b'\n', &text[i..]).map_or(text.len(), |j| i + j + 1);
        } else if text[i..].starts_with(b"/*") {
            match memchr::memmem::find(&text[i + 2..], b"*/") {
                Some(j) => i += j + 4,
                None => return i,
            }
        } else {
            i += 1;
        }
    }
    text.len()
}

fn word_token(word: &[u8], len: usize) -> Tok {
    let eq = |k: &[u8]| len == k.len() && word.eq_ignore_ascii_case(k);
    if eq(b"create") {
        Tok::Create
    } else if eq(b"trigger") {
        Tok::Trigger
    } else if eq(b"temp") || eq(b"temporary") {
        Tok::Temp
    } else if eq(b"end") {
        Tok::End
    } else if eq(b"explain") {
        Tok::Explain
    } else {
        Tok::Other
    }
}

/// Feeds one token (starting at `at` in the statement) to the state machine.
#[inline]
fn feed(state: &mut u8, first: &mut Option<usize>, tok: Tok, at: usize) -> bool {
    if tok != Tok::Ws && first.is_none() {
        *first = Some(at);
    }
    *state = TRANS[*state as usize][tok as usize];
    tok == Tok::Semi && *state == 1
}

/// Scans `buf`, whose first byte is at offset `base` of the statement.
/// Returns how many bytes belong to the current statement and whether it is
/// complete.
#[allow(clippy::too_many_arguments)]
fn scan(
    buf: &[u8],
    base: usize,
    lex: &mut Lex,
    state: &mut u8,
    word: &mut [u8; 9],
    word_len: &mut usize,
    first: &mut Option<usize>,
) -> (usize, bool) {
    let mut i = 0;
    let n = buf.len();
    while i < n {
        match *lex {
            Lex::Normal => {
                // Fast path: keywords do not matter in these states.
                if *state == 2 || *state == 5 {
                    while i < n && !SPECIAL[buf[i] as usize] {
                        i += 1;
                    }
                    if i == n {
                        break;
                    }
                }
                let c = buf[i];
                let at = base + i;
                match c {
                    b';' => {
                        if feed(state, first, Tok::Semi, at) {
                            return (i + 1, true);
                        }
                    }
                    b'\'' | b'"' | b'`' => {
                        feed(state, first, Tok::Other, at);
                        *lex = Lex::Quote(c);
                    }
                    b'[' => {
                        feed(state, first, Tok::Other, at);
                        *lex = Lex::Bracket;
                    }
                    b'-' => *lex = Lex::Dash,
                    b'/' => *lex = Lex::Slash,
                    c if c.is_ascii_whitespace() => {
                        feed(state, first, Tok::Ws, at);
                    }
                    c if is_id_char(c) => {
                        if *state == 2 || *state == 5 {
                            // Unreachable through the fast path, kept for clarity.
                            feed(state, first, Tok::Other, at);
                        } else {
                            if first.is_none() {
                                *first = Some(at);
                            }
                            word[0] = c;
                            *word_len = 1;
                            *lex = Lex::Word;
                        }
                    }
                    _ => {
                        feed(state, first, Tok::Other, at);
                    }
                }
                i += 1;
            }
            Lex::Word => {
                let c = buf[i];
                if is_id_char(c) {
                    if *word_len < word.len() {
                        word[*word_len] = c;
                    }
                    *word_len += 1;
                    i += 1;
                } else {
                    let tok = word_token(&word[..(*word_len).min(9)], *word_len);
                    // `first` is already set at the word's start.
                    feed(state, first, tok, base + i);
                    *lex = Lex::Normal;
                }
            }
            Lex::Quote(q) => match memchr::memchr(q, &buf[i..]) {
                Some(j) => {
                    i += j + 1;
                    *lex = Lex::Normal;
                }
                None => i = n,
            },
            Lex::Bracket => match memchr::memchr(b']', &buf[i..]) {
                Some(j) => {
                    i += j + 1;
                    *lex = Lex::Normal;
                }
                None => i = n,
            },
            Lex::Dash => {
                if buf[i] == b'-' {
                    *lex = Lex::LineComment;
                    i += 1;
                } else {
                    feed(state, first, Tok::Other, (base + i).saturating_sub(1));
                    *lex = Lex::Normal;
                }
            }
            Lex::LineComment => match memchr::memchr(b'\n', &buf[i..]) {
                Some(j) => {
                    i += j + 1;
                    feed(state, first, Tok::Ws, base + i);
                    *lex = Lex::Normal;
                }
                None => i = n,
            },
            Lex::Slash => {
                if buf[i] == b'*' {
                    *lex = Lex::Block;
                    i += 1;
                } else {
                    feed(state, first, Tok::Other, (base + i).saturating_sub(1));
                    *lex = Lex::Normal;
                }
            }
            Lex::Block => match memchr::memchr(b'*', &buf[i..]) {
                Some(j) => {
                    i += j + 1;
                    *lex = Lex::BlockStar;
                }
                None => i = n,
            },
            Lex::BlockStar => {
                if buf[i] == b'/' {
                    i += 1;
                    feed(state, first, Tok::Ws, base + i);
                    *lex = Lex::Normal;
                } else if buf[i] == b'*' {
                    i += 1;
                } else {
                    *lex = Lex::Block;
                }
            }
        }
    }
    (n, false)
}

/// Where the bytes of a parsed text or blob value are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Bytes {
    /// A range of the statement text itself (no escapes to undo).
    Stmt(usize, usize),
    /// A range of the scratch buffer (unescaped, decoded or concatenated).
    Scratch(usize, usize),
}

/// One literal value of an `INSERT` statement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Literal {
    Null,
    Integer(i64),
    Real(f64),
    Text(Bytes),
    Blob(Bytes),
}

/// An `INSERT INTO target[(columns)] VALUES(...),(...)...;` statement,
/// parsed: where its parts are in the statement's text, and how many
/// values each of its rows has.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ParsedInsert {
    /// `stmt[..head_end]` is `INSERT INTO target[(columns)]`, verbatim: with
    /// ` VALUES(?,...)` appended, the statement to prepare.
    pub(crate) head_end: usize,
    /// `stmt[target.0..target.1]` is the target table as written (quotes
    /// included).
    pub(crate) target: (usize, usize),
    /// Values a row: every row has as many.
    pub(crate) per_row: usize,
}

/// Parses `stmt` as an `INSERT` of one or more rows of plain literals, each
/// row as long as the first, filling `values` with every row's values in
/// order (and `scratch` with bytes that needed unescaping). `None` when the
/// statement is anything else or uses a form this parser does not know:
/// the caller then hands it to SQLite as it is.
pub(crate) fn parse_insert(
    stmt: &[u8],
    values: &mut Vec<Literal>,
    scratch: &mut Vec<u8>,
) -> Option<ParsedInsert> {
    values.clear();
    scratch.clear();
    let mut p = Parser {
        s: stmt,
        i: 0,
        calls: 0,
    };
    p.keyword(b"INSERT")?;
    p.ws1()?;
    p.keyword(b"INTO")?;
    p.ws1()?;
    let target_start = p.i;
    p.identifier()?;
    let target = (target_start, p.i);
    let mut head_end = p.i;
    p.ws();
    if p.peek() == Some(b'(') {
        p.i += 1;
        loop {
            p.ws();
            p.identifier()?;
            p.ws();
            match p.next()? {
                b',' => continue,
                b')' => break,
                _ => return None,
            }
        }
        head_end = p.i;
        p.ws();
    }
    p.keyword(b"VALUES")?;
    p.ws();
    let per_row = p.row(values, scratch)?;
    loop {
        p.ws();
        match p.next()? {
            b',' => {
                p.ws();
                if p.row(values, scratch)? != per_row {
                    return None;
                }
            }
            b';' => break,
            _ => return None,
        }
    }
    p.ws();
    if p.i != stmt.len() {
        return None;
    }
    Some(ParsedInsert {
        head_end,
        target,
        per_row,
    })
}

/// How many `unistr()` and `replace()` calls one value the parser reads
/// itself may hold (sqlite3 shells write at most two, as
/// `replace(replace(...))`). A value with more is left to SQLite, which has
/// limits of its own: the parser's recursion stays bounded, whatever a dump
/// holds.
const MAX_CALLS: u32 = 8;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    /// The `unistr()` and `replace()` calls read in the current value.
    calls: u32,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn ws1(&mut self) -> Option<()> {
        let start = self.i;
        self.ws();
        (self.i > start).then_some(())
    }

    /// A keyword, case-insensitively, not followed by an identifier byte.
    fn keyword(&mut self, k: &[u8]) -> Option<()> {
        let end = self.i + k.len();
        let word = self.s.get(self.i..end)?;
        if !word.eq_ignore_ascii_case(k) || self.s.get(end).is_some_and(|&c| is_id_char(c)) {
            return None;
        }
        self.i = end;
        Some(())
    }

    /// An identifier: bare, or quoted with `"`, `` ` `` or `[...]`. Single
    /// quotes are left to SQLite (they may mean a string).
    fn identifier(&mut self) -> Option<()> {
        match self.peek()? {
            q @ (b'"' | b'`') => {
                self.i += 1;
                loop {
                    let j = memchr::memchr(q, &self.s[self.i..])?;
                    self.i += j + 1;
                    if self.peek() == Some(q) {
                        self.i += 1;
                    } else {
                        return Some(());
                    }
                }
            }
            b'[' => {
                let j = memchr::memchr(b']', &self.s[self.i..])?;
                self.i += j + 1;
                Some(())
            }
            c if is_id_char(c) && !c.is_ascii_digit() => {
                while self.peek().is_some_and(is_id_char) {
                    self.i += 1;
                }
                // A schema-qualified name is left to SQLite.
                (self.peek() != Some(b'.')).then_some(())
            }
            _ => None,
        }
    }

    /// One row, `(literal, ...)`, appended to `values`; how many values
    /// it has.
    fn row(&mut self, values: &mut Vec<Literal>, scratch: &mut Vec<u8>) -> Option<usize> {
        self.expect(b'(')?;
        let start = values.len();
        loop {
            self.ws();
            let value = self.literal(scratch)?;
            values.push(value);
            self.ws();
            match self.next()? {
                b',' => continue,
                b')' => return Some(values.len() - start),
                _ => return None,
            }
        }
    }

    fn literal(&mut self, scratch: &mut Vec<u8>) -> Option<Literal> {
        self.calls = 0;
        match self.peek()? {
            b'\'' | b'c' | b'C' | b'u' | b'U' | b'r' | b'R' if self.starts_text() => {
                self.text(scratch)
            }
            b'-' | b'0'..=b'9' | b'.' => self.number(),
            b'X' | b'x' if self.s.get(self.i + 1) == Some(&b'\'') => {
                let (start, end) = self.hex(scratch)?;
                Some(Literal::Blob(Bytes::Scratch(start, end)))
            }
            b'N' | b'n' => {
                self.keyword(b"NULL")?;
                Some(Literal::Null)
            }
            _ => None,
        }
    }

    /// Whether a text value starts here: a quote, `char(`, `unistr(`,
    /// `replace(` or `CAST(`.
    fn starts_text(&self) -> bool {
        let rest = &self.s[self.i..];
        rest.first() == Some(&b'\'')
            || [&b"char("[..], b"cast(", b"unistr(", b"replace("]
                .iter()
                .any(|w| self.at_word(w))
    }

    /// Whether the text here starts with `word`, case-insensitively.
    fn at_word(&self, word: &[u8]) -> bool {
        self.s[self.i..]
            .get(..word.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
    }

    /// Text: `CAST(X'..' AS TEXT)`, or quoted strings and `char(...)`
    /// joined by `||`.
    fn text(&mut self, scratch: &mut Vec<u8>) -> Option<Literal> {
        if self.s[self.i..]
            .get(..5)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"cast("))
        {
            self.i += 5;
            self.ws();
            let (start, end) = self.hex(scratch)?;
            self.ws1()?;
            self.keyword(b"AS")?;
            self.ws1()?;
            self.keyword(b"TEXT")?;
            self.ws();
            self.expect(b')')?;
            return Some(Literal::Text(Bytes::Scratch(start, end)));
        }
        let piece = self.text_piece(scratch)?;
        self.ws();
        if !self.s[self.i..].starts_with(b"||") {
            return Some(Literal::Text(piece));
        }
        // A concatenation: gather the pieces in the scratch buffer. Pieces
        // that needed unescaping are already at its end, in order.
        let start = match piece {
            Bytes::Scratch(a, _) => a,
            Bytes::Stmt(..) => scratch.len(),
        };
        self.append(piece, scratch);
        while self.s[self.i..].starts_with(b"||") {
            self.i += 2;
            self.ws();
            let piece = self.text_piece(scratch)?;
            self.append(piece, scratch);
            self.ws();
        }
        Some(Literal::Text(Bytes::Scratch(start, scratch.len())))
    }

    /// Appends a piece of a concatenation to the scratch buffer (pieces
    /// decoded into it are already there).
    fn append(&self, piece: Bytes, scratch: &mut Vec<u8>) {
        if let Bytes::Stmt(a, b) = piece {
            scratch.extend_from_slice(&self.s[a..b]);
        }
    }

    /// One quoted string, `char(n, ...)`, `unistr('...')` (how sqlite3
    /// 3.50 and later dump text with control characters) or
    /// `replace(text, 'from', 'to')` (how earlier sqlite3 shells do it: the
    /// arguments being text pieces themselves).
    fn text_piece(&mut self, scratch: &mut Vec<u8>) -> Option<Bytes> {
        if self.at_word(b"unistr(") {
            self.call()?;
            self.i += 7;
            self.ws();
            let piece = self.text_piece(scratch)?;
            self.ws();
            self.expect(b')')?;
            return self.unistr(piece, scratch);
        }
        if self.at_word(b"replace(") {
            self.call()?;
            self.i += 8;
            let mark = scratch.len();
            let mut args = [Bytes::Stmt(0, 0); 3];
            for (n, arg) in args.iter_mut().enumerate() {
                self.ws();
                *arg = match self.text(scratch)? {
                    Literal::Text(b) => b,
                    _ => return None,
                };
                self.ws();
                self.expect(if n == 2 { b')' } else { b',' })?;
            }
            let get = |b: Bytes, scratch: &[u8]| -> Vec<u8> {
                match b {
                    Bytes::Stmt(a, e) => self.s[a..e].to_vec(),
                    Bytes::Scratch(a, e) => scratch[a..e].to_vec(),
                }
            };
            let (text, from, to) = (
                get(args[0], scratch),
                get(args[1], scratch),
                get(args[2], scratch),
            );
            // Shells replace an escape with a shorter text. A replace()
            // that grows the text is left to SQLite, which bounds what it
            // builds by its length limit: here, each one of a few nested
            // ones could double the text.
            if to.len() > from.len() && !from.is_empty() {
                return None;
            }
            // The pieces of a concatenation must follow one another in the
            // scratch buffer: the arguments decoded there are replaced by
            // the result.
            scratch.truncate(mark);
            if from.is_empty() {
                scratch.extend_from_slice(&text);
            } else {
                let mut rest = &text[..];
                while let Some(at) = memchr::memmem::find(rest, &from) {
                    scratch.extend_from_slice(&rest[..at]);
                    scratch.extend_from_slice(&to);
                    rest = &rest[at + from.len()..];
                }
                scratch.extend_from_slice(rest);
            }
            return Some(Bytes::Scratch(mark, scratch.len()));
        }
        if self.peek()? == b'\'' {
            self.i += 1;
            let start = self.i;
            let j = memchr::memchr(b'\'', &self.s[self.i..])?;
            // A NUL byte ends the statement for SQLite (and the line for
            // sqlite3's shell), so neither reads such a string: it is left
            // to SQLite, as in unistr().
            if memchr::memchr(0, &self.s[start..start + j]).is_some() {
                return None;
            }
            if self.s.get(self.i + j + 1) != Some(&b'\'') {
                self.i += j + 1;
                return Some(Bytes::Stmt(start, start + j));
            }
            // Doubled quotes: unescape into the scratch buffer.
            let out = scratch.len();
            loop {
                let j = memchr::memchr(b'\'', &self.s[self.i..])?;
                if memchr::memchr(0, &self.s[self.i..self.i + j]).is_some() {
                    return None;
                }
                scratch.extend_from_slice(&self.s[self.i..self.i + j]);
                self.i += j + 1;
                if self.peek() == Some(b'\'') {
                    scratch.push(b'\'');
                    self.i += 1;
                } else {
                    return Some(Bytes::Scratch(out, scratch.len()));
                }
            }
        }
        if !self.s[self.i..].get(..5)?.eq_ignore_ascii_case(b"char(") {
            return None;
        }
        self.i += 5;
        let out = scratch.len();
        loop {
            self.ws();
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            let n: u32 = std::str::from_utf8(&self.s[start..self.i])
                .ok()?
                .parse()
                .ok()?;
            let c = char::from_u32(n)?;
            let mut utf8 = [0u8; 4];
            scratch.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            self.ws();
            match self.next()? {
                b',' => continue,
                b')' => return Some(Bytes::Scratch(out, scratch.len())),
                _ => return None,
            }
        }
    }

    /// Counts one more `unistr()` or `replace()` call in the current value;
    /// `None` past [`MAX_CALLS`].
    fn call(&mut self) -> Option<()> {
        self.calls += 1;
        (self.calls <= MAX_CALLS).then_some(())
    }

    /// Decodes the escapes of SQLite's `unistr()` in `piece` into the
    /// scratch buffer: `\\`, `\XXXX`, `\uXXXX`, `\+XXXXXX` and
    /// `\UXXXXXXXX`. Anything else (an invalid escape, a code point that is
    /// not a character, a NUL byte, where SQLite's C string handling would
    /// stop) is left to SQLite, which reports or handles it.
    fn unistr(&self, piece: Bytes, scratch: &mut Vec<u8>) -> Option<Bytes> {
        let text = match piece {
            Bytes::Stmt(a, e) => self.s[a..e].to_vec(),
            Bytes::Scratch(a, e) => {
                let text = scratch[a..e].to_vec();
                scratch.truncate(a);
                text
            }
        };
        if memchr::memchr(0, &text).is_some() {
            return None;
        }
        let out = scratch.len();
        let mut rest = &text[..];
        while let Some(at) = memchr::memchr(b'\\', rest) {
            scratch.extend_from_slice(&rest[..at]);
            rest = &rest[at + 1..];
            let (skip, digits) = match rest.first()? {
                b'\\' => {
                    scratch.push(b'\\');
                    rest = &rest[1..];
                    continue;
                }
                c if c.is_ascii_hexdigit() => (0, 4),
                b'u' => (1, 4),
                b'+' => (1, 6),
                b'U' => (1, 8),
                _ => return None,
            };
            let hex = rest.get(skip..skip + digits)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let code = u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            let mut utf8 = [0u8; 4];
            scratch.extend_from_slice(char::from_u32(code)?.encode_utf8(&mut utf8).as_bytes());
            rest = &rest[skip + digits..];
        }
        scratch.extend_from_slice(rest);
        Some(Bytes::Scratch(out, scratch.len()))
    }

    /// `X'hex'`, decoded into the scratch buffer.
    fn hex(&mut self, scratch: &mut Vec<u8>) -> Option<(usize, usize)> {
        if !matches!(self.next()?, b'X' | b'x') || self.next()? != b'\'' {
            return None;
        }
        let j = memchr::memchr(b'\'', &self.s[self.i..])?;
        let digits = &self.s[self.i..self.i + j];
        if !digits.len().is_multiple_of(2) {
            return None;
        }
        let start = scratch.len();
        scratch.resize(start + digits.len() / 2, 0);
        let mut bad = 0u8;
        for (out, pair) in scratch[start..].iter_mut().zip(digits.chunks_exact(2)) {
            let (hi, lo) = (HEX_VALUE[pair[0] as usize], HEX_VALUE[pair[1] as usize]);
            bad |= (hi | lo) & 0x10;
            *out = (hi << 4) | (lo & 0x0f);
        }
        if bad != 0 {
            scratch.truncate(start);
            return None;
        }
        self.i += j + 1;
        Some((start, scratch.len()))
    }

    /// An integer or a float, optionally negative. Integers that do not fit
    /// 64 bits and hexadecimal integers are left to SQLite.
    fn number(&mut self) -> Option<Literal> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let digits_start = self.i;
        let mut float = false;
        while let Some(c) = self.peek() {
            match c {
                b'0'..=b'9' => self.i += 1,
                b'.' => {
                    float = true;
                    self.i += 1;
                }
                b'e' | b'E' => {
                    float = true;
                    self.i += 1;
                    if matches!(self.peek(), Some(b'+' | b'-')) {
                        self.i += 1;
                    }
                }
                _ => break,
            }
        }
        if self.i == digits_start || self.peek().is_some_and(is_id_char) {
            return None;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).ok()?;
        if !float {
            return text.parse::<i64>().ok().map(Literal::Integer);
        }
        let mut value = text.parse::<f64>().ok()?;
        // Exact floats: `m.0` times or divided by powers of two (see
        // `push_real`); each step is exact, in SQLite as here.
        while let Some(op @ (b'*' | b'/')) = self.peek() {
            self.i += 1;
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            if self.peek().is_some_and(is_id_char) {
                return None;
            }
            let factor: u64 = std::str::from_utf8(&self.s[start..self.i])
                .ok()?
                .parse()
                .ok()?;
            if !factor.is_power_of_two() || factor > 1 << 62 {
                return None;
            }
            if op == b'*' {
                value *= factor as f64;
            } else {
                value /= factor as f64;
            }
        }
        Some(Literal::Real(value))
    }
}

/// Each byte's value as a hexadecimal digit; 0x10 marks a byte that is not
/// one.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0x10u8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<(u64, String)> {
        let mut r = StatementReader::new(io::BufReader::with_capacity(3, text.as_bytes()), 1 << 20);
        let mut out = Vec::new();
        while let Some((line, s)) = r.next_statement().unwrap() {
            out.push((line, String::from_utf8(s.to_vec()).unwrap()));
        }
        out
    }

    #[test]
    fn splits_at_semicolons_outside_strings_comments_and_trigger_bodies() {
        let text = "-- head\nCREATE TABLE t(a);\nINSERT INTO t VALUES('x;y'); /* ; */\n\
                    CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; SELECT 'end;'; END;\n\
                    INSERT INTO \"t;\" VALUES(1);";
        let got = split(text);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0], (2, "CREATE TABLE t(a);".to_string()));
        assert_eq!(got[1], (3, "INSERT INTO t VALUES('x;y');".to_string()));
        assert!(got[2].1.starts_with("CREATE TRIGGER") && got[2].1.ends_with("END;"));
        assert_eq!(got[2].0, 4);
        assert_eq!(got[3], (5, "INSERT INTO \"t;\" VALUES(1);".to_string()));
    }

    #[test]
    fn an_unfinished_statement_is_reported_with_its_line() {
        let mut r = StatementReader::new(
            io::BufReader::new("SELECT 1;\nINSERT INTO t VALUES('x".as_bytes()),
            1 << 20,
        );
        assert!(r.next_statement().unwrap().is_some());
        match r.next_statement() {
            Err(SplitError::Unfinished { line }) => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_the_literals_dumps_are_made_of() {
        let stmt = b"INSERT INTO \"t\"(rowid,\"a\") VALUES(-9223372036854775808,-3.0/4*2,'it''s',X'00ff',NULL,'a'||char(10,0)||'b',CAST(X'ff' AS TEXT),9.0e+999,-0.0);";
        let mut values = Vec::new();
        let mut scratch = Vec::new();
        let parsed = parse_insert(stmt, &mut values, &mut scratch).unwrap();
        assert_eq!(
            &stmt[..parsed.head_end],
            &b"INSERT INTO \"t\"(rowid,\"a\")"[..]
        );
        assert_eq!(&stmt[parsed.target.0..parsed.target.1], &b"\"t\""[..]);
        let text = |b: Bytes| match b {
            Bytes::Stmt(a, e) => stmt[a..e].to_vec(),
            Bytes::Scratch(a, e) => scratch[a..e].to_vec(),
        };
        assert_eq!(values[0], Literal::Integer(i64::MIN));
        assert_eq!(values[1], Literal::Real(-1.5));
        let Literal::Text(t) = values[2] else {
            panic!()
        };
        assert_eq!(text(t), b"it's");
        let Literal::Blob(b) = values[3] else {
            panic!()
        };
        assert_eq!(text(b), [0, 255]);
        assert_eq!(values[4], Literal::Null);
        let Literal::Text(t) = values[5] else {
            panic!()
        };
        assert_eq!(text(t), b"a\n\0b");
        let Literal::Text(t) = values[6] else {
            panic!()
        };
        assert_eq!(text(t), [255]);
        assert_eq!(values[7], Literal::Real(f64::INFINITY));
        let Literal::Real(z) = values[8] else {
            panic!()
        };
        assert!(z == 0.0 && z.is_sign_negative());
    }

    #[test]
    fn parses_every_row_of_a_multi_row_insert() {
        let stmt = b"INSERT INTO \"t\"(rowid,\"a\") VALUES(1,'x'),\n(3,0.25) ,\n ( 4 , NULL );";
        let mut values = Vec::new();
        let mut scratch = Vec::new();
        let parsed = parse_insert(stmt, &mut values, &mut scratch).unwrap();
        assert_eq!(parsed.per_row, 2);
        assert_eq!(
            &stmt[..parsed.head_end],
            &b"INSERT INTO \"t\"(rowid,\"a\")"[..]
        );
        assert_eq!(values.len(), 6);
        assert_eq!(values[0], Literal::Integer(1));
        assert!(matches!(values[1], Literal::Text(Bytes::Stmt(..))));
        assert_eq!(
            values[2..],
            [
                Literal::Integer(3),
                Literal::Real(0.25),
                Literal::Integer(4),
                Literal::Null
            ]
        );
    }

    #[test]
    fn parses_how_sqlite3_shells_write_control_characters() {
        let stmt = "INSERT INTO t VALUES(unistr('a\\u000ab\\\\c\\U0001F600\\+0000e9\\0041'),\
                    replace(replace('x\\r\\ny''s','\\r',char(13)),'\\n',char(10)),\
                    'p'||unistr('\\u000d')||replace('q-','-',''),replace('ab','','z'));";
        let stmt = stmt.as_bytes();
        let mut values = Vec::new();
        let mut scratch = Vec::new();
        parse_insert(stmt, &mut values, &mut scratch).expect("parsed");
        let text = |v: &Literal| match *v {
            Literal::Text(Bytes::Stmt(a, e)) => String::from_utf8(stmt[a..e].to_vec()).unwrap(),
            Literal::Text(Bytes::Scratch(a, e)) => {
                String::from_utf8(scratch[a..e].to_vec()).unwrap()
            }
            ref other => panic!("{other:?}"),
        };
        assert_eq!(text(&values[0]), "a\nb\\c\u{1F600}\u{e9}A");
        assert_eq!(text(&values[1]), "x\r\ny's");
        assert_eq!(text(&values[2]), "p\rq");
        assert_eq!(text(&values[3]), "ab");
    }

    #[test]
    fn leaves_unknown_forms_to_sqlite() {
        let mut values = Vec::new();
        let mut scratch = Vec::new();
        for stmt in [
            &b"INSERT INTO t VALUES(1),(2,3);"[..],
            b"INSERT INTO t VALUES(1),;",
            b"INSERT INTO t VALUES(1)(2);",
            b"INSERT INTO t VALUES(1),(2) ON CONFLICT DO NOTHING;",
            b"INSERT INTO t VALUES(1),(upper('a'));",
            b"INSERT INTO t VALUES(9223372036854775808);",
            b"INSERT INTO t VALUES(0x10);",
            b"INSERT INTO t VALUES(unistr('a\\q'));",
            b"INSERT INTO t VALUES(unistr('\\uD800'));",
            b"INSERT INTO t VALUES(replace('a',1,2));",
            b"INSERT INTO main.t VALUES(1);",
            b"INSERT INTO t SELECT 1;",
            b"INSERT INTO t VALUES(X'abc');",
        ] {
            assert!(
                parse_insert(stmt, &mut values, &mut scratch).is_none(),
                "{}",
                String::from_utf8_lossy(stmt)
            );
        }
    }
}
