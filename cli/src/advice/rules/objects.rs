//! `no-slots`: instances of a class without `__slots__` created in a loop. Each carries
//! its attributes in a per-instance dictionary (in 3.11+, a values array with a dict made
//! on demand); `__slots__` stores them in fixed fields. Whether it is created hundreds
//! of thousands of times, and what that allocates, is the profile's to say
//! ([`super::super::advise`]).

use super::{Ctx, Finding};
use crate::advice::Rule;
use ruff_python_ast::{self as ast, Expr, Stmt};

/// Whether a class body assigns `__slots__`.
fn has_slots(c: &ast::StmtClassDef) -> bool {
    c.body.iter().any(|s| {
        let targets: Vec<&Expr> = match s {
            Stmt::Assign(a) => a.targets.iter().collect(),
            Stmt::AnnAssign(a) => vec![&a.target],
            _ => Vec::new(),
        };
        targets
            .iter()
            .any(|t| matches!(t, Expr::Name(n) if n.id.as_str() == "__slots__"))
    })
}

/// `dataclass`, `dataclass(...)`, `dataclasses.dataclass(...)`: `Some(slots=True?)`.
fn dataclass(d: &ast::Decorator) -> Option<bool> {
    let (func, keywords): (&Expr, &[ast::Keyword]) = match &d.expression {
        Expr::Call(c) => (&c.func, &c.arguments.keywords),
        e => (e, &[]),
    };
    let named = match func {
        Expr::Name(n) => n.id.as_str() == "dataclass",
        Expr::Attribute(a) => a.attr.as_str() == "dataclass",
        _ => false,
    };
    named.then(|| {
        keywords.iter().any(|k| {
            k.arg.as_ref().is_some_and(|a| a.as_str() == "slots")
                && matches!(
                    k.value,
                    Expr::BooleanLiteral(ast::ExprBooleanLiteral { value: true, .. })
                )
        })
    })
}

/// A class whose instances get a dict: no `__slots__`, no decorator but a plain
/// `@dataclass`, no metaclass, and bases the file defines (none of which has slots
/// either) or `object`. Unknown bases (an exception, `NamedTuple`, an extension type)
/// may change the layout: no finding.
fn dict_backed<'a>(ctx: &Ctx<'a>, c: &'a ast::StmtClassDef, depth: u32) -> bool {
    if depth > 8 || has_slots(c) {
        return false;
    }
    if !c.decorator_list.iter().all(|d| dataclass(d) == Some(false)) {
        return false;
    }
    let Some(args) = c.arguments.as_deref() else {
        return true;
    };
    args.keywords.is_empty()
        && args.args.iter().all(|b| match b {
            Expr::Name(n) if n.id.as_str() == "object" => true,
            Expr::Name(n) => ctx
                .m
                .classes
                .get(n.id.as_str())
                .is_some_and(|base| dict_backed(ctx, base, depth + 1)),
            _ => false,
        })
}

/// The attributes `__init__` sets on `self`, for the example.
fn init_attributes(c: &ast::StmtClassDef) -> Vec<String> {
    let mut names = Vec::new();
    for s in &c.body {
        let Stmt::FunctionDef(f) = s else { continue };
        if f.name.as_str() != "__init__" {
            continue;
        }
        for s in &f.body {
            let targets: Vec<&Expr> = match s {
                Stmt::Assign(a) => a.targets.iter().collect(),
                Stmt::AnnAssign(a) => vec![&a.target],
                _ => Vec::new(),
            };
            for t in targets {
                if let Expr::Attribute(a) = t {
                    if matches!(&*a.value, Expr::Name(n) if n.id.as_str() == "self")
                        && !names.contains(&a.attr.to_string())
                    {
                        names.push(a.attr.to_string());
                    }
                }
            }
        }
    }
    names
}

/// The fix for a class and every base of the file it inherits from (a dict in any base
/// keeps the instances' dict): the bases first, each with the attributes its `__init__`
/// sets.
fn slots_example(ctx: &Ctx, class: &ast::StmtClassDef) -> String {
    let mut chain = vec![class];
    while let Some(base) = chain
        .last()
        .and_then(|c| c.arguments.as_deref())
        .and_then(|a| a.args.first())
        .and_then(|b| match b {
            Expr::Name(n) => ctx.m.classes.get(n.id.as_str()),
            _ => None,
        })
    {
        if chain.len() > 8 {
            break;
        }
        chain.push(base);
    }
    let parts: Vec<String> = chain
        .iter()
        .rev()
        .map(|c| {
            let bases = c
                .arguments
                .as_deref()
                .map(|a| {
                    format!(
                        "({})",
                        ctx.text(a).trim_matches(|ch| ch == '(' || ch == ')')
                    )
                })
                .unwrap_or_default();
            if !c.decorator_list.is_empty() {
                return format!("@dataclass(slots=True)\nclass {}{bases}: ...", c.name);
            }
            let fields: Vec<String> = init_attributes(c)
                .iter()
                .map(|a| format!("\"{a}\""))
                .collect();
            let tuple = match fields.len() {
                1 => format!("({},)", fields[0]),
                _ => format!("({})", fields.join(", ")),
            };
            format!("class {}{bases}:\n    __slots__ = {tuple}", c.name)
        })
        .collect();
    parts.join("\n")
}

/// `C(...)` in a loop or comprehension, C a dict-backed class of this file.
pub fn no_slots(ctx: &Ctx, e: &Expr) -> Option<Finding> {
    let Expr::Call(call) = e else { return None };
    let Expr::Name(n) = &*call.func else {
        return None;
    };
    let class = ctx.m.classes.get(n.id.as_str())?;
    // A local name that shadows the class is not it.
    if ctx.binding(n.id.as_str()) != ctx.m.globals.get(n.id.as_str()) {
        return None;
    }
    if !dict_backed(ctx, class, 0) {
        return None;
    }
    let example = slots_example(ctx, class);
    Some(ctx.finding(
        Rule::NoSlots,
        vec![ctx.m.src.lines(e)],
        n.id.as_str(),
        example,
    ))
}
