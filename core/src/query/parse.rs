//! The string form: `statusId = "open" && (subtotal > 100 || guests >= 4) && name.en ~ "kosh"`.
//!
//! ```text
//! filter   = or
//! or       = and ("||" and)*
//! and      = unary ("&&" unary)*
//! unary    = "!" unary | "(" filter ")" | "true" | "false" | compare
//! compare  = operand op operand         op: = != > >= < <= ~ !~ in
//! operand  = path | "@" path | JSON value (string, number, true, false, null, [..], {..})
//! path     = segment ("." segment)*     segment: letters, digits, _ ; or `any text`
//! ```
//!
//! A recursive-descent parser over the characters; literals are read by `serde_json`, so strings,
//! escapes and numbers mean exactly what they mean in JSON. Errors give the position (in
//! characters from 0) and what was expected there.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::filter::{Filter, Op, Operand, VARIABLE_ROOTS};

/// A filter string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("invalid filter at position {position}: expected {expected}, found {found}")]
pub struct FilterError {
    /// Characters before the problem.
    pub position: usize,
    /// What would have been valid there.
    pub expected: String,
    /// What is there (`end of input` at the end).
    pub found: String,
}

impl FilterError {
    /// `invalid-filter`.
    pub fn code(&self) -> &'static str {
        "invalid-filter"
    }
}

/// Nesting deeper than this is refused rather than risking the stack.
const MAX_DEPTH: usize = 64;

struct Parser<'s> {
    src: &'s str,
    /// Byte offset into `src`.
    at: usize,
    depth: usize,
}

impl Filter {
    /// Parses the string form (see the module doc). The result is [`Filter::normalize`]d.
    pub fn parse(src: &str) -> Result<Filter, FilterError> {
        let mut p = Parser { src, at: 0, depth: 0 };
        let filter = p.or()?;
        p.skip_space();
        if p.at < src.len() {
            return Err(p.error("`&&`, `||` or the end"));
        }
        Ok(filter.normalize())
    }
}

/// Parses one operand on its own (a field path or a variable), as the JSON form's keys are.
pub(crate) fn parse_operand_key(src: &str) -> Result<Operand, FilterError> {
    let mut p = Parser { src, at: 0, depth: 0 };
    let operand = match p.peek() {
        Some('@') => p.variable()?,
        _ => Operand::Field(p.path("a field name")?),
    };
    p.skip_space();
    if p.at < src.len() {
        return Err(p.error("the end of the field name"));
    }
    Ok(operand)
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl<'s> Parser<'s> {
    fn rest(&self) -> &'s str {
        &self.src[self.at..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_space(&mut self) {
        let trimmed = self.rest().trim_start();
        self.at = self.src.len() - trimmed.len();
    }

    fn error(&self, expected: &str) -> FilterError {
        let found = match self.rest().chars().next() {
            None => "end of input".to_owned(),
            Some(_) => {
                let word: String = self.rest().chars().take_while(|c| !c.is_whitespace()).take(12).collect();
                format!("`{word}`")
            }
        };
        FilterError { position: self.src[..self.at].chars().count(), expected: expected.to_owned(), found }
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        if self.rest().starts_with(token) {
            self.at += token.len();
            true
        } else {
            false
        }
    }

    /// A keyword: the word itself, not the start of a longer name.
    fn eat_word(&mut self, word: &str) -> bool {
        self.skip_space();
        let rest = self.rest();
        if rest.starts_with(word) && !rest[word.len()..].chars().next().is_some_and(is_ident) {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, FilterError>) -> Result<T, FilterError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(&format!("at most {MAX_DEPTH} levels of nesting")));
        }
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut parts = vec![self.and()?];
        while self.eat("||") {
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Filter::Or(parts) })
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut parts = vec![self.unary()?];
        while self.eat("&&") {
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Filter::And(parts) })
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        self.skip_space();
        if self.rest().starts_with('!') && !self.rest().starts_with("!=") && !self.rest().starts_with("!~") {
            self.at += 1;
            return self.nested(|p| Ok(Filter::Not(Box::new(p.unary()?))));
        }
        if self.eat("(") {
            let inner = self.nested(|p| p.or())?;
            if !self.eat(")") {
                return Err(self.error("`)`"));
            }
            return Ok(inner);
        }
        // `true` / `false` alone are filters; followed by an operator they are values.
        let start = self.at;
        for (word, filter) in [("true", Filter::And(Vec::new())), ("false", Filter::Or(Vec::new()))] {
            if self.eat_word(word) {
                if self.operator().is_none() {
                    return Ok(filter);
                }
                self.at = start;
            }
        }
        self.comparison()
    }

    fn operator(&mut self) -> Option<Op> {
        self.skip_space();
        let save = self.at;
        for (token, op) in [
            ("!=", Op::Ne),
            ("!~", Op::NotContains),
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("=", Op::Eq),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("~", Op::Contains),
        ] {
            if self.eat(token) {
                self.at = save;
                return Some(op);
            }
        }
        if self.eat_word("in") {
            self.at = save;
            return Some(Op::In);
        }
        None
    }

    fn comparison(&mut self) -> Result<Filter, FilterError> {
        let left = self.operand()?;
        let Some(op) = self.operator() else {
            return Err(self.error("an operator (= != > >= < <= ~ !~ in)"));
        };
        let taken = if op == Op::In { "in" } else { op.symbol() };
        self.eat(taken);
        self.skip_space();
        let right_at = self.at;
        let right = self.operand()?;
        if op == Op::In && !matches!(right, Operand::Value(Value::Array(_)) | Operand::Var(_)) {
            self.at = right_at;
            return Err(self.error("a list `[..]` after `in`"));
        }
        Ok(Filter::Compare { left, op, right })
    }

    fn operand(&mut self) -> Result<Operand, FilterError> {
        self.skip_space();
        match self.peek() {
            Some('@') => self.variable(),
            Some('"' | '[' | '{' | '-' | '0'..='9') => self.literal(),
            Some(_) if self.eat_word("true") => Ok(Operand::Value(Value::Bool(true))),
            Some(_) if self.eat_word("false") => Ok(Operand::Value(Value::Bool(false))),
            Some(_) if self.eat_word("null") => Ok(Operand::Value(Value::Null)),
            Some(c) if is_ident(c) || c == '`' => Ok(Operand::Field(self.path("a field")?)),
            _ => Err(self.error("a field, a value or a variable")),
        }
    }

    fn literal(&mut self) -> Result<Operand, FilterError> {
        if self.rest().starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            // A number ends where its characters do (the stream reader wants a delimiter after it).
            let len = self.rest().chars().take_while(|c| c.is_ascii_digit() || "+-.eE".contains(*c)).count();
            return match serde_json::from_str::<Value>(&self.rest()[..len]) {
                Ok(number) => {
                    self.at += len;
                    Ok(Operand::Value(number))
                }
                Err(_) => Err(self.error("a number")),
            };
        }
        let mut values = serde_json::Deserializer::from_str(self.rest()).into_iter::<Value>();
        match values.next() {
            Some(Ok(value)) => {
                self.at += values.byte_offset();
                Ok(Operand::Value(value))
            }
            _ => Err(self.error("a JSON value (\"text\", a number, [..])")),
        }
    }

    fn variable(&mut self) -> Result<Operand, FilterError> {
        let start = self.at;
        self.at += 1; // '@'
        let path = self.path("a variable name after `@`")?;
        if !VARIABLE_ROOTS.contains(&path[0].as_str()) {
            self.at = start;
            return Err(self.error("a variable (@now, @auth.…, @request.…, @new.…, @row.…)"));
        }
        Ok(Operand::Var(path))
    }

    fn path(&mut self, what: &str) -> Result<Vec<String>, FilterError> {
        let mut segments = vec![self.segment(what)?];
        while self.rest().starts_with('.') {
            self.at += 1;
            segments.push(self.segment("a name after `.`")?);
        }
        Ok(segments)
    }

    fn segment(&mut self, what: &str) -> Result<String, FilterError> {
        if let Some(quoted) = self.rest().strip_prefix('`') {
            let Some(end) = quoted.find('`') else {
                self.at = self.src.len();
                return Err(self.error("a closing backtick"));
            };
            let name = quoted[..end].to_owned();
            self.at += end + 2;
            return Ok(name);
        }
        let len: usize = self.rest().chars().take_while(|c| is_ident(*c)).map(char::len_utf8).sum();
        if len == 0 {
            return Err(self.error(what));
        }
        let name = self.rest()[..len].to_owned();
        self.at += len;
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_issues_example_parses_into_one_tree() {
        let f = Filter::parse(
            r#"statusId = "open" && (subtotal > 100 || guests >= 4) && name.en ~ "kosh" && kitchenSectionId in ["hot", "grill"]"#,
        )
        .unwrap();
        let Filter::And(parts) = &f else { panic!("{f:?}") };
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], Filter::compare(Operand::field("statusId"), Op::Eq, Operand::Value(json!("open"))));
        assert!(matches!(&parts[1], Filter::Or(o) if o.len() == 2));
        assert_eq!(parts[2], Filter::compare(Operand::field("name.en"), Op::Contains, Operand::Value(json!("kosh"))));
        assert_eq!(
            parts[3],
            Filter::compare(Operand::field("kitchenSectionId"), Op::In, Operand::Value(json!(["hot", "grill"])))
        );
    }

    #[test]
    fn variables_keywords_and_quoted_names() {
        let f =
            Filter::parse("@auth.role != \"\" && !(`order-no` = -1.5e2) && true && x = true && inner = null").unwrap();
        let Filter::And(parts) = f else { panic!() };
        assert_eq!(
            parts[0],
            Filter::compare(Operand::Var(vec!["auth".into(), "role".into()]), Op::Ne, Operand::Value(json!("")))
        );
        assert_eq!(
            parts[1],
            Filter::Not(Box::new(Filter::compare(
                Operand::Field(vec!["order-no".into()]),
                Op::Eq,
                Operand::Value(json!(-150.0))
            )))
        );
        assert_eq!(parts.len(), 4, "`true` alone matches everything and merges away: {parts:?}");
        assert_eq!(
            parts[3],
            Filter::compare(Operand::field("inner"), Op::Eq, Operand::Value(Value::Null)),
            "`inner` is not `in`"
        );
        assert_eq!(Filter::parse("true").unwrap(), Filter::And(vec![]));
        assert!(Filter::parse("(a=1&&b in [\"x\"])||c>-2").is_ok(), "no spaces needed");
        assert_eq!(
            Filter::parse("اسم = \"كشري\"").unwrap(),
            Filter::compare(Operand::field("اسم"), Op::Eq, Operand::Value(json!("كشري")))
        );
    }

    #[test]
    fn errors_say_where_and_what_was_expected() {
        let cases = [
            ("status = ", 9, "a field, a value or a variable"),
            ("status open", 7, "an operator"),
            ("(a = 1", 6, "`)`"),
            ("a = 1 b = 2", 6, "`&&`, `||` or the end"),
            ("a in 3", 5, "a list"),
            ("@secret.x = 1", 0, "a variable"),
            ("a = \"unterminated", 4, "a JSON value"),
            ("a = 1.2.3", 4, "a number"),
            ("كشري = ", 7, "a field, a value"),
        ];
        for (src, position, expected) in cases {
            let e = Filter::parse(src).unwrap_err();
            assert_eq!(e.position, position, "{src}: {e}");
            assert!(e.expected.starts_with(expected), "{src}: {e}");
        }
        let deep = format!("{}a = 1{}", "(".repeat(200), ")".repeat(200));
        assert!(Filter::parse(&deep).unwrap_err().expected.contains("nesting"));
    }
}
