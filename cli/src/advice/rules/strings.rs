//! `str-concat-loop`: a string (or bytes) grown by concatenation in a loop, in a form
//! CPython copies whole each time. CPython 3.11+ extends a string in place only for
//! `s += x` and `s = s + x` on a plain function local (`STORE_FAST`); an attribute, an
//! item, a global, a closure's variable, a prepend (`s = x + s`), `s = s + a + b` and
//! `f"{s}..."` all copy, and so does every bytes concatenation: O(n^2) in all.

use super::{same, Ctx, Finding};
use crate::advice::scope::Kind;
use crate::advice::Rule;
use ruff_python_ast::{self as ast, Expr, Operator, Stmt};

pub fn concat(ctx: &Ctx, stmt: &Stmt) -> Option<Finding> {
    let (target, bytes) = match stmt {
        Stmt::AugAssign(a) if a.op == Operator::Add => {
            let bytes = stringish(ctx, &a.target, &a.value)?;
            if !bytes && ctx.fast_local(&a.target) {
                return None;
            }
            (&*a.target, bytes)
        }
        Stmt::Assign(a) if a.targets.len() == 1 => {
            let target = &a.targets[0];
            match &*a.value {
                Expr::BinOp(_) => {
                    let operands = added(&a.value);
                    let at = operands.iter().position(|o| same(o, target))?;
                    let bytes = operands
                        .iter()
                        .map(|o| stringish(ctx, target, o))
                        .find(Option::is_some)??;
                    // Only `s = s + x` on a fast local is extended in place.
                    let in_place = at == 0 && operands.len() == 2 && ctx.fast_local(target);
                    if in_place && !bytes {
                        return None;
                    }
                    (target, bytes)
                }
                Expr::FString(f) if interpolates(f, target) => (target, false),
                _ => return None,
            }
        }
        _ => return None,
    };
    let name = ctx.text(target);
    let (empty, join) = if bytes {
        ("b\"\"", "b\"\".join(parts)")
    } else {
        ("\"\"", "\"\".join(parts)")
    };
    let example = format!(
        "parts = []\nfor ...:\n    parts.append(piece)\n{name} = {join}  # instead of {name} = {empty} and += in the loop"
    );
    Some(ctx.finding(
        Rule::StrConcatLoop,
        vec![ctx.m.src.lines(stmt)],
        name,
        example,
    ))
}

/// `Some(bytes?)` when `target += value` is string (or bytes) concatenation as far as the
/// source shows: either side a string by its form or binding.
fn stringish(ctx: &Ctx, target: &Expr, value: &Expr) -> Option<bool> {
    match (ctx.kind(target), ctx.kind(value)) {
        (Some(Kind::Bytes), _) | (_, Some(Kind::Bytes)) => Some(true),
        (Some(Kind::Str), _) | (_, Some(Kind::Str)) => Some(false),
        _ => None,
    }
}

/// The operands of a chain of `+` as Python groups it, left to right: `a + b + c` is
/// `[a, b, c]`, `a + (b + c)` is `[a, b + c]`.
fn added(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::BinOp(b) if b.op == Operator::Add => {
            let mut v = added(&b.left);
            v.push(&b.right);
            v
        }
        _ => vec![e],
    }
}

/// Whether an f-string formats `target` (`f"{s}{x}"` rebuilds all of `s`).
fn interpolates(f: &ast::ExprFString, target: &Expr) -> bool {
    f.value.f_strings().any(|fs| {
        fs.elements
            .interpolations()
            .any(|i| same(&i.expression, target))
    })
}
