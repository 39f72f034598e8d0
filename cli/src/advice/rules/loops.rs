//! Loops a built-in does faster: `manual-count` (counting into a dict by hand),
//! `manual-sum` (adding up an iterable), `append-loop` (a loop that only appends).

use super::{names_in, same, Ctx, Finding};
use crate::advice::scope::Kind;
use crate::advice::Rule;
use ruff_python_ast::{self as ast, CmpOp, Expr, Operator, Stmt};

/// `D[K]` as (D, K).
fn item(e: &Expr) -> Option<(&Expr, &Expr)> {
    match e {
        Expr::Subscript(s) => Some((&s.value, &s.slice)),
        _ => None,
    }
}

/// Whether `stmt` assigns to (or adds to) `D[K]`.
fn stores_item(stmt: &Stmt, d: &Expr, k: &Expr) -> bool {
    let target = match stmt {
        Stmt::Assign(a) if a.targets.len() == 1 => &a.targets[0],
        Stmt::AugAssign(a) => &*a.target,
        _ => return false,
    };
    item(target).is_some_and(|(d2, k2)| same(d, d2) && same(k, k2))
}

fn is_aug_item(stmt: &Stmt, d: &Expr, k: &Expr) -> bool {
    matches!(stmt, Stmt::AugAssign(_)) && stores_item(stmt, d, k)
}

/// Counting into a dict by hand, in a loop:
/// `if k in d: d[k] += 1 / else: d[k] = 1`; `if k not in d: d[k] = 0` then `d[k] += 1`;
/// `d[k] = d.get(k, 0) + 1`; `try: d[k] += 1 / except KeyError: d[k] = 1`.
pub fn manual_count(ctx: &Ctx, stmt: &Stmt, next: Option<&Stmt>) -> Option<Finding> {
    let mut spans = vec![ctx.m.src.lines(stmt)];
    let (d, k) = match stmt {
        Stmt::If(i) => {
            let Expr::Compare(c) = &*i.test else {
                return None;
            };
            let [op] = &*c.ops else { return None };
            let [d] = &*c.comparators else { return None };
            let k = &*c.left;
            let body_stores = i.body.len() == 1 && stores_item(&i.body[0], d, k);
            let else_stores = match &*i.elif_else_clauses {
                [e] => e.test.is_none() && e.body.len() == 1 && stores_item(&e.body[0], d, k),
                _ => false,
            };
            let counted = match op {
                CmpOp::In | CmpOp::NotIn if body_stores && else_stores => true,
                // `if k not in d: d[k] = 0` and the add after it.
                CmpOp::NotIn if body_stores && i.elif_else_clauses.is_empty() => {
                    let n = next.filter(|n| is_aug_item(n, d, k))?;
                    spans.push(ctx.m.src.lines(n));
                    true
                }
                _ => false,
            };
            if !counted {
                return None;
            }
            (d, k)
        }
        Stmt::Assign(a) if a.targets.len() == 1 => {
            let (d, k) = item(&a.targets[0])?;
            let Expr::BinOp(b) = &*a.value else {
                return None;
            };
            let gets = |e: &Expr| match e {
                Expr::Call(c) => match &*c.func {
                    Expr::Attribute(at) => {
                        at.attr.as_str() == "get"
                            && same(&at.value, d)
                            && c.arguments.args.first().is_some_and(|a0| same(a0, k))
                    }
                    _ => false,
                },
                _ => false,
            };
            if b.op != Operator::Add || !(gets(&b.left) || gets(&b.right)) {
                return None;
            }
            (d, k)
        }
        Stmt::Try(t) => {
            let [body] = &*t.body else { return None };
            let [ast::ExceptHandler::ExceptHandler(h)] = &*t.handlers else {
                return None;
            };
            let Stmt::AugAssign(a) = body else {
                return None;
            };
            let (d, k) = item(&a.target)?;
            let key_error =
                matches!(h.type_.as_deref(), Some(Expr::Name(n)) if n.id.as_str() == "KeyError");
            if !key_error || h.body.len() != 1 || !stores_item(&h.body[0], d, k) {
                return None;
            }
            (d, k)
        }
        _ => return None,
    };
    if matches!(
        ctx.kind(d),
        Some(Kind::CountingDict | Kind::List | Kind::Set | Kind::Str | Kind::Other)
    ) {
        return None;
    }
    // The loop's own line first: of equally costly lines the first gets the hint.
    if let Some(l) = ctx.loop_line() {
        spans.insert(0, (l, l));
    }
    let name = ctx.text(d);
    let example = format!(
        "from collections import Counter\n{name} = Counter(keys)  # or defaultdict(int): {name}[{}] += 1",
        ctx.text(k)
    );
    Some(ctx.finding(Rule::ManualCount, spans, name, example))
}

/// A loop's work, filters (`if` without `else`) unwrapped: the one statement it does.
fn only_work(body: &[Stmt]) -> Option<&Stmt> {
    match body {
        [Stmt::If(i)] if i.elif_else_clauses.is_empty() => only_work(&i.body),
        [s] => Some(s),
        _ => None,
    }
}

/// Whether a `for` loop's target names appear in `e`.
fn uses_target(f: &ast::StmtFor, e: &Expr) -> bool {
    let targets = names_in(&f.target);
    names_in(e).iter().any(|n| targets.contains(n))
}

/// `for x in xs: total += f(x)` (or `total = total + f(x)`), perhaps under an `if`: what
/// `sum()` over a generator does in C.
pub fn manual_sum(ctx: &Ctx, f: &ast::StmtFor) -> Option<Finding> {
    if !f.orelse.is_empty() || f.is_async {
        return None;
    }
    let (target, value) = match only_work(&f.body)? {
        Stmt::AugAssign(a) if a.op == Operator::Add => (&*a.target, &*a.value),
        Stmt::Assign(a) if a.targets.len() == 1 => match &*a.value {
            Expr::BinOp(b) if b.op == Operator::Add && same(&b.left, &a.targets[0]) => {
                (&a.targets[0], &*b.right)
            }
            Expr::BinOp(b) if b.op == Operator::Add && same(&b.right, &a.targets[0]) => {
                (&a.targets[0], &*b.left)
            }
            _ => return None,
        },
        _ => return None,
    };
    let Expr::Name(total) = target else {
        return None;
    };
    let not_number = |k| matches!(k, Some(Kind::Str | Kind::Bytes | Kind::List | Kind::Other));
    if !uses_target(f, value) || not_number(ctx.kind(target)) || not_number(ctx.kind(value)) {
        return None;
    }
    let (iter, elt) = (ctx.text(&*f.iter), ctx.text(value));
    let filter = match &f.body[..] {
        [Stmt::If(i)] => format!(" if {}", ctx.text(&*i.test)),
        _ => String::new(),
    };
    let target = ctx.text(&*f.target);
    let example = if filter.is_empty() && elt == target {
        format!("{} += sum({iter})", total.id)
    } else {
        format!("{} += sum({elt} for {target} in {iter}{filter})", total.id)
    };
    Some(ctx.finding(
        Rule::ManualSum,
        vec![ctx.m.src.lines(f)],
        total.id.as_str(),
        example,
    ))
}

/// A loop (or nest of loops, with filters) whose only work is `out.append(x)` (or
/// `out += [x]`) on a list: a comprehension builds the list without the per-item method
/// call.
pub fn append_loop(ctx: &Ctx, f: &ast::StmtFor) -> Option<Finding> {
    if !f.orelse.is_empty() || f.is_async {
        return None;
    }
    let mut clauses = vec![format!(
        "for {} in {}",
        ctx.text(&*f.target),
        ctx.text(&*f.iter)
    )];
    let mut tests: Vec<&Expr> = Vec::new();
    let mut body: &[Stmt] = &f.body;
    // Down the nest (for / if / for ...) to the one statement at the bottom.
    let work = loop {
        match body {
            [Stmt::For(g)] if g.orelse.is_empty() && !g.is_async => {
                clauses.push(format!(
                    "for {} in {}",
                    ctx.text(&*g.target),
                    ctx.text(&*g.iter)
                ));
                body = &g.body;
            }
            [Stmt::If(i)] if i.elif_else_clauses.is_empty() => {
                clauses.push(format!("if {}", ctx.text(&*i.test)));
                tests.push(&i.test);
                body = &i.body;
            }
            [s] => break s,
            _ => return None,
        }
    };
    let (list, elt) = match work {
        Stmt::Expr(e) => match &*e.value {
            Expr::Call(c) if c.arguments.args.len() == 1 && c.arguments.keywords.is_empty() => {
                match &*c.func {
                    Expr::Attribute(a) if a.attr.as_str() == "append" => {
                        (&*a.value, &c.arguments.args[0])
                    }
                    _ => return None,
                }
            }
            _ => return None,
        },
        Stmt::AugAssign(a) if a.op == Operator::Add => match &*a.value {
            Expr::List(l) if l.elts.len() == 1 => (&*a.target, &l.elts[0]),
            _ => return None,
        },
        _ => return None,
    };
    // The list must not be read while it is built: `if x not in out: out.append(x)`
    // dedupes, no comprehension can.
    let list_name = names_in(list);
    let reads_list = |e: &Expr| names_in(e).iter().any(|n| list_name.contains(n));
    if ctx.kind(list) != Some(Kind::List) || reads_list(elt) || tests.iter().any(|t| reads_list(t))
    {
        return None;
    }
    let name = ctx.text(list);
    let example = format!(
        "{name} += [{} {}]  # or {name} = [...] when it starts empty",
        ctx.text(elt),
        clauses.join(" ")
    );
    Some(ctx.finding(Rule::AppendLoop, vec![ctx.m.src.lines(f)], name, example))
}
