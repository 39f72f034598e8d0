//! `list-membership` (`x in a_list` in a loop scans the list each time) and `list-front`
//! (inserting at or removing from a list's front in a loop moves every element).

use super::{same, Ctx, Finding};
use crate::advice::scope::Kind;
use crate::advice::Rule;
use ruff_python_ast::{self as ast, CmpOp, Expr, Number, Stmt};

/// `x in L` / `x not in L` where L is a list: a literal, a comprehension, `list(...)`, or a
/// name or attribute bound to one.
pub fn membership(ctx: &Ctx, e: &Expr) -> Option<Finding> {
    let Expr::Compare(c) = e else {
        return None;
    };
    let hay = c
        .ops
        .iter()
        .zip(c.comparators.iter())
        .find(|(op, hay)| {
            matches!(op, CmpOp::In | CmpOp::NotIn) && ctx.kind(hay) == Some(Kind::List)
        })
        .map(|(_, hay)| hay)?;
    let name = ctx.text(hay);
    let set = match hay {
        Expr::Name(_) | Expr::Attribute(_) => {
            format!("{name}_set = set({name})  # once, before the loop")
        }
        _ => format!("wanted = set({name})  # once, before the loop"),
    };
    let example = format!(
        "{set}\n... if x in {}: ...",
        set.split(" =").next().unwrap_or("wanted")
    );
    Some(ctx.finding(
        Rule::ListMembership,
        vec![ctx.m.src.lines(e)],
        name,
        example,
    ))
}

fn is_int(e: &Expr, v: i64) -> bool {
    matches!(e, Expr::NumberLiteral(ast::ExprNumberLiteral { value: Number::Int(i), .. }) if i.as_i64() == Some(v))
}

/// Whether a receiver may be a list: one by its binding, or one the source does not tell
/// (a parameter); not a deque, dict or anything else it shows.
fn maybe_list(ctx: &Ctx, e: &Expr) -> bool {
    matches!(ctx.kind(e), Some(Kind::List) | None)
}

fn front_example(list: &str) -> String {
    format!(
        "from collections import deque\n{list} = deque({list})\n{list}.appendleft(x)  # or {list}.popleft()"
    )
}

/// `L.insert(0, x)` and `L.pop(0)`.
pub fn front_call(ctx: &Ctx, e: &Expr) -> Option<Finding> {
    let Expr::Call(call) = e else {
        return None;
    };
    let Expr::Attribute(a) = &*call.func else {
        return None;
    };
    let args = &call.arguments.args;
    let front = match a.attr.as_str() {
        "insert" => args.len() == 2 && is_int(&args[0], 0),
        "pop" => args.len() == 1 && is_int(&args[0], 0),
        _ => false,
    };
    if !front || !call.arguments.keywords.is_empty() || !maybe_list(ctx, &a.value) {
        return None;
    }
    let name = ctx.text(&*a.value);
    Some(ctx.finding(
        Rule::ListFront,
        vec![ctx.m.src.lines(e)],
        name,
        front_example(name),
    ))
}

/// `del L[0]`, `L[:0] = [x]` (also `L[0:0]`), and `L = [x] + L`.
pub fn front_stmt(ctx: &Ctx, stmt: &Stmt) -> Option<Finding> {
    let list = match stmt {
        Stmt::Delete(d) => d.targets.iter().find_map(|t| match t {
            Expr::Subscript(s) if is_int(&s.slice, 0) && maybe_list(ctx, &s.value) => {
                Some(&*s.value)
            }
            _ => None,
        })?,
        Stmt::Assign(a) if a.targets.len() == 1 => match (&a.targets[0], &*a.value) {
            (Expr::Subscript(s), _) => match &*s.slice {
                Expr::Slice(sl)
                    if sl.upper.as_deref().is_some_and(|u| is_int(u, 0))
                        && sl.lower.as_deref().is_none_or(|l| is_int(l, 0))
                        && maybe_list(ctx, &s.value) =>
                {
                    &*s.value
                }
                _ => return None,
            },
            (t, Expr::BinOp(b))
                if b.op == ast::Operator::Add
                    && same(&b.right, t)
                    && !same(&b.left, t)
                    && (ctx.kind(t) == Some(Kind::List)
                        || ctx.kind(&b.left) == Some(Kind::List)) =>
            {
                t
            }
            _ => return None,
        },
        _ => return None,
    };
    let name = ctx.text(list);
    Some(ctx.finding(
        Rule::ListFront,
        vec![ctx.m.src.lines(stmt)],
        name,
        front_example(name),
    ))
}
