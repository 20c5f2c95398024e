//! containerd's filter language, as `List` receives it:
//! `filter := selector ("," selector)*`, `selector := fieldpath [op value]`,
//! `op := "==" | "!=" | "~="`; a fieldpath is dot-separated fields, each a
//! bare word or a quoted string (`labels."a.b/c"`); a value is a quoted
//! string or runs to the next comma. Selectors in one filter are ANDed;
//! several filters are ORed. A selector without an operator tests presence.

use crate::error::{Error, Result};
use crate::store::Record;

#[derive(Debug)]
enum Op {
    Present,
    Eq(String),
    Ne(String),
    Match(regex_lite::Regex),
}

#[derive(Debug)]
struct Selector {
    path: Vec<String>,
    op: Op,
}

/// Parsed filters; an empty set matches everything.
#[derive(Debug, Default)]
pub struct Filters(Vec<Vec<Selector>>);

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
    src: &'a str,
}

impl<'a> Lexer<'a> {
    fn err(&self, what: &str) -> Error {
        Error::InvalidArgument(format!("filter {:?} at {}: {what}", self.src, self.i))
    }
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn quoted(&mut self) -> Result<String> {
        let q = self.s[self.i];
        self.i += 1;
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            self.i += 1;
            if c == q {
                return String::from_utf8(out).map_err(|_| self.err("invalid utf-8"));
            }
            if c == b'\\' && q != b'/' {
                let e = self.peek().ok_or_else(|| self.err("unterminated escape"))?;
                self.i += 1;
                out.push(match e {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'r' => b'\r',
                    other => other,
                });
            } else if c == b'\\' && q == b'/' && self.peek() == Some(b'/') {
                self.i += 1;
                out.push(b'/');
            } else {
                out.push(c);
            }
        }
        Err(self.err("unterminated quoted string"))
    }
    fn field(&mut self) -> Result<String> {
        self.skip_ws();
        match self.peek() {
            Some(b'"') | Some(b'`') => self.quoted(),
            Some(c) if c.is_ascii_alphanumeric() || c == b'_' => {
                let start = self.i;
                while let Some(c) = self.peek() {
                    if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' {
                        self.i += 1;
                    } else {
                        break;
                    }
                }
                Ok(self.src[start..self.i].to_string())
            }
            _ => Err(self.err("expected a field name")),
        }
    }
    fn value(&mut self) -> Result<String> {
        self.skip_ws();
        match self.peek() {
            Some(b'"') | Some(b'`') | Some(b'/') => self.quoted(),
            _ => {
                let start = self.i;
                while let Some(c) = self.peek() {
                    if c == b',' {
                        break;
                    }
                    self.i += 1;
                }
                let v = self.src[start..self.i].trim();
                if v.is_empty() {
                    return Err(self.err("expected a value"));
                }
                Ok(v.to_string())
            }
        }
    }
}

fn parse_one(src: &str) -> Result<Vec<Selector>> {
    let mut lx = Lexer { s: src.as_bytes(), i: 0, src };
    let mut sels = Vec::new();
    loop {
        let mut path = vec![lx.field()?];
        lx.skip_ws();
        while lx.peek() == Some(b'.') {
            lx.i += 1;
            path.push(lx.field()?);
            lx.skip_ws();
        }
        let rest = &src[lx.i..];
        let op = if rest.starts_with("==") {
            lx.i += 2;
            Op::Eq(lx.value()?)
        } else if rest.starts_with("!=") {
            lx.i += 2;
            Op::Ne(lx.value()?)
        } else if rest.starts_with("~=") {
            lx.i += 2;
            let v = lx.value()?;
            Op::Match(regex_lite::Regex::new(&v).map_err(|e| lx.err(&format!("bad regex: {e}")))?)
        } else {
            Op::Present
        };
        sels.push(Selector { path, op });
        lx.skip_ws();
        match lx.peek() {
            None => return Ok(sels),
            Some(b',') => lx.i += 1,
            Some(_) => return Err(lx.err("expected ',' or end")),
        }
    }
}

impl Filters {
    pub fn parse<S: AsRef<str>>(filters: &[S]) -> Result<Self> {
        let mut out = Vec::new();
        for f in filters {
            let f = f.as_ref();
            if f.trim().is_empty() {
                continue;
            }
            out.push(parse_one(f)?);
        }
        Ok(Filters(out))
    }

    pub fn matches(&self, name: &str, rec: &Record) -> bool {
        self.0.is_empty() || self.0.iter().any(|sels| sels.iter().all(|s| s.matches(name, rec)))
    }
}

impl Selector {
    fn field<'r>(&self, name: &'r str, rec: &'r Record) -> Option<&'r str> {
        let first = self.path.first()?.as_str();
        match (first, self.path.len()) {
            ("name", 1) => Some(name),
            ("parent", 1) => Some(rec.parent.as_str()),
            ("kind", 1) => Some(rec.kind.as_filter_str()),
            ("labels", n) if n >= 2 => rec.labels.get(&self.path[1..].join(".")).map(String::as_str),
            _ => None,
        }
    }

    fn matches(&self, name: &str, rec: &Record) -> bool {
        let v = self.field(name, rec);
        match &self.op {
            Op::Present => v.is_some_and(|v| !v.is_empty()),
            Op::Eq(want) => v == Some(want.as_str()),
            Op::Ne(want) => v != Some(want.as_str()),
            Op::Match(re) => v.is_some_and(|v| re.is_match(v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Kind;

    fn rec(kind: Kind, parent: &str, labels: &[(&str, &str)]) -> Record {
        Record {
            id: 1,
            kind,
            parent: parent.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            created: 0,
            updated: 0,
            size: 0,
            inodes: 0,
        }
    }

    #[test]
    fn selectors_and_or() {
        let r = rec(Kind::Committed, "p", &[("containerd.io/snapshot/x", "1"), ("a", "b")]);
        let m = |f: &[&str]| Filters::parse(f).expect("parse").matches("n", &r);
        assert!(m(&[]));
        assert!(m(&["kind==committed"]));
        assert!(!m(&["kind==active"]));
        assert!(m(&["kind==active", "name==n"]));
        assert!(m(&["parent==p,kind!=view"]));
        assert!(!m(&["parent==p,kind==view"]));
        assert!(m(&[r#"labels."containerd.io/snapshot/x"==1"#]));
        assert!(m(&["labels.a"]));
        assert!(!m(&["labels.zz"]));
        assert!(m(&["name~=^n$"]));
        assert!(m(&["labels.a~=/^b/"]));
        assert!(m(&[r#"name=="n""#]));
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let r = rec(Kind::View, "", &[("é", "ü")]);
        let pieces = ["é", "==", "!=", "~=", ",", ".", "\"", "`", "/", "\\", " ", "labels", "name", "(", "ü", "x"];
        // Every sequence of up to four pieces: a small exhaustive fuzz.
        let mut inputs = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for i in &inputs {
                for p in pieces {
                    next.push(format!("{i}{p}"));
                }
            }
            inputs.extend(next);
        }
        for f in inputs {
            if let Ok(parsed) = Filters::parse(&[f.as_str()]) {
                let _ = parsed.matches("é", &r);
            }
        }
        assert!(Filters::parse(&[r#"labels."é"==ü"#]).expect("parse").matches("n", &r));
    }

    #[test]
    fn bad_filters_are_invalid_argument() {
        for f in ["==x", "name==", "name~=(", "labels.\"x", "a b"] {
            assert!(matches!(Filters::parse(&[f]), Err(Error::InvalidArgument(_))), "{f}");
        }
    }
}
