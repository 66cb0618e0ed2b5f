//! The string form of a filter (`Display`): what [`Filter::parse`] reads back into the same tree
//! (for a [`Filter::normalize`]d filter).

use std::fmt;

use super::filter::{Filter, Operand};

fn is_plain(segment: &str) -> bool {
    !segment.is_empty()
        && segment.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !segment.starts_with(|c: char| c.is_ascii_digit())
        && !matches!(segment, "true" | "false" | "null" | "in")
}

fn write_path(f: &mut fmt::Formatter<'_>, path: &[String]) -> fmt::Result {
    for (i, segment) in path.iter().enumerate() {
        if i > 0 {
            f.write_str(".")?;
        }
        if is_plain(segment) {
            f.write_str(segment)?;
        } else {
            write!(f, "`{segment}`")?;
        }
    }
    Ok(())
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Field(path) => write_path(f, path),
            Operand::Var(path) => {
                f.write_str("@")?;
                write_path(f, path)
            }
            Operand::Value(v) => write!(f, "{v}"),
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::And(parts) if parts.is_empty() => f.write_str("true"),
            Filter::Or(parts) if parts.is_empty() => f.write_str("false"),
            Filter::And(parts) | Filter::Or(parts) => {
                let (joiner, is_and) = if matches!(self, Filter::And(_)) { (" && ", true) } else { (" || ", false) };
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(joiner)?;
                    }
                    // `&&` binds tighter: an `||` inside an `&&` needs parentheses, and a group
                    // of its own kind keeps them (so it stays a group when read back).
                    let wrap = match part {
                        Filter::Or(p) if !p.is_empty() => true,
                        Filter::And(p) if !p.is_empty() => !is_and || p.len() > 1,
                        _ => false,
                    };
                    if wrap {
                        write!(f, "({part})")?;
                    } else {
                        write!(f, "{part}")?;
                    }
                }
                Ok(())
            }
            Filter::Not(inner) => write!(f, "!({inner})"),
            Filter::Compare { left, op, right } => write!(f, "{left} {} {right}", op.symbol()),
        }
    }
}
