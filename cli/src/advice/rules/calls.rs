//! `repeated-call`: a pure function (no side effect the source shows) called again and
//! again with the same arguments: naive recursion that solves the same subproblem many
//! times (`fib(n - 1) + fib(n - 2)`), or a call in a loop whose arguments do not change
//! from one iteration to the next, or take few values (`f(i % 8)`). `functools.lru_cache`
//! computes each distinct call once.

use super::{names_in, Ctx, Finding};
use crate::advice::scope::{annotation_kind, Kind};
use crate::advice::Rule;
use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{self as ast, Expr, Number, Operator, Stmt};

/// Methods that change their receiver, or do I/O.
const MUTATORS: &[&str] = &[
    "append",
    "extend",
    "insert",
    "pop",
    "remove",
    "clear",
    "add",
    "discard",
    "update",
    "setdefault",
    "sort",
    "reverse",
    "popleft",
    "appendleft",
    "write",
    "writelines",
    "send",
    "put",
    "put_nowait",
    "get_nowait",
    "seek",
    "flush",
    "close",
    "acquire",
    "release",
];
/// Functions with effects or results that vary from call to call.
const IMPURE_CALLS: &[&str] = &[
    "print", "open", "input", "exec", "eval", "setattr", "delattr", "next", "id", "globals",
];
/// Modules whose functions read the clock, the environment or a random state.
const IMPURE_MODULES: &[&str] = &[
    "random",
    "time",
    "os",
    "sys",
    "secrets",
    "uuid",
    "datetime",
    "subprocess",
    "socket",
];

/// Whether a function is decorated with anything but `@staticmethod`: already cached
/// (`@lru_cache`, `@functools.cache`, ...), or wrapped in something that may cache or
/// change what calling it does.
fn decorated(f: &ast::StmtFunctionDef) -> bool {
    f.decorator_list.iter().any(|d| {
        let e = match &d.expression {
            Expr::Call(c) => &*c.func,
            e => e,
        };
        !matches!(e, Expr::Name(n) if n.id.as_str() == "staticmethod")
    })
}

/// No side effect the source shows, hashable-looking parameters, not a generator.
pub fn pure(f: &ast::StmtFunctionDef) -> bool {
    struct V {
        pure: bool,
    }
    impl<'a> Visitor<'a> for V {
        fn visit_stmt(&mut self, s: &'a Stmt) {
            let stores_into = |t: &Expr| matches!(t, Expr::Attribute(_) | Expr::Subscript(_));
            match s {
                Stmt::Global(_) | Stmt::Nonlocal(_) => self.pure = false,
                Stmt::Assign(a) if a.targets.iter().any(stores_into) => self.pure = false,
                Stmt::AugAssign(a) if stores_into(&a.target) => self.pure = false,
                Stmt::AnnAssign(a) if stores_into(&a.target) => self.pure = false,
                Stmt::Delete(d) if d.targets.iter().any(stores_into) => self.pure = false,
                _ => {}
            }
            visitor::walk_stmt(self, s);
        }
        fn visit_expr(&mut self, e: &'a Expr) {
            match e {
                Expr::Yield(_) | Expr::YieldFrom(_) | Expr::Await(_) => self.pure = false,
                Expr::Call(c) => match &*c.func {
                    Expr::Name(n) if IMPURE_CALLS.contains(&n.id.as_str()) => self.pure = false,
                    Expr::Attribute(a) if MUTATORS.contains(&a.attr.as_str()) => self.pure = false,
                    Expr::Attribute(a)
                        if names_in(&a.value)
                            .iter()
                            .any(|m| IMPURE_MODULES.contains(m)) =>
                    {
                        self.pure = false
                    }
                    _ => {}
                },
                _ => {}
            }
            visitor::walk_expr(self, e);
        }
    }
    if f.is_async {
        return false;
    }
    let p = &f.parameters;
    let unhashable = p
        .posonlyargs
        .iter()
        .chain(&p.args)
        .filter_map(|a| a.parameter.annotation.as_deref())
        .any(|a| {
            matches!(
                annotation_kind(a),
                Some(Kind::List | Kind::Dict | Kind::Set | Kind::CountingDict | Kind::Deque)
            )
        });
    if unhashable {
        return false;
    }
    let mut v = V { pure: true };
    f.body.iter().for_each(|s| v.visit_stmt(s));
    v.pure
}

fn example(f: &ast::StmtFunctionDef) -> String {
    format!(
        "from functools import lru_cache\n\n@lru_cache(maxsize=None)\ndef {}(...): ...",
        f.name
    )
}

/// Calls of `name` in `body`, and whether one is in a loop or comprehension there.
fn self_calls(name: &str, body: &[Stmt]) -> (usize, bool) {
    struct V<'n> {
        name: &'n str,
        calls: usize,
        in_loop: usize,
        looped: bool,
    }
    impl<'a> Visitor<'a> for V<'_> {
        fn visit_stmt(&mut self, s: &'a Stmt) {
            match s {
                // A nested def or class is another function.
                Stmt::FunctionDef(_) | Stmt::ClassDef(_) => {}
                Stmt::For(_) | Stmt::While(_) => {
                    self.in_loop += 1;
                    visitor::walk_stmt(self, s);
                    self.in_loop -= 1;
                }
                _ => visitor::walk_stmt(self, s),
            }
        }
        fn visit_expr(&mut self, e: &'a Expr) {
            let comprehension = matches!(
                e,
                Expr::ListComp(_) | Expr::SetComp(_) | Expr::DictComp(_) | Expr::Generator(_)
            );
            if let Expr::Call(c) = e {
                if matches!(&*c.func, Expr::Name(n) if n.id.as_str() == self.name) {
                    self.calls += 1;
                    self.looped |= self.in_loop > 0;
                }
            }
            self.in_loop += usize::from(comprehension);
            visitor::walk_expr(self, e);
            self.in_loop -= usize::from(comprehension);
        }
    }
    let mut v = V {
        name,
        calls: 0,
        in_loop: 0,
        looped: false,
    };
    body.iter().for_each(|s| v.visit_stmt(s));
    (v.calls, v.looped)
}

/// A pure function that calls itself twice or more, or in a loop: the same arguments
/// come back again and again down the recursion.
pub fn recursion(ctx: &Ctx, f: &ast::StmtFunctionDef) -> Option<Finding> {
    if decorated(f) || !pure(f) {
        return None;
    }
    let (calls, looped) = self_calls(f.name.as_str(), &f.body);
    if calls < 2 && !(calls == 1 && looped) {
        return None;
    }
    let (first, last) = (f.body.first()?, f.body.last()?);
    let span = (ctx.m.src.first_line(first), ctx.m.src.lines(last).1);
    let mut finding = ctx.finding(Rule::RepeatedCall, vec![span], f.name.as_str(), example(f));
    // The hint names the function itself, wherever the walk is.
    finding.function = {
        let outer = ctx.function();
        if outer == "<module>" {
            f.name.to_string()
        } else {
            format!("{outer}.{}", f.name)
        }
    };
    Some(finding)
}

/// An argument that repeats: loop-invariant, or reduced to a few values (`i % 8`).
fn repeats(ctx: &Ctx, e: &Expr) -> bool {
    let few = match e {
        Expr::BinOp(b) if b.op == Operator::Mod => matches!(
            &*b.right,
            Expr::NumberLiteral(ast::ExprNumberLiteral { value: Number::Int(i), .. })
                if i.as_i64().is_some_and(|v| (1..=1024).contains(&v))
        ),
        _ => false,
    };
    few || ctx.loop_invariant(e)
}

/// `f(args)` in a loop, f a pure module-level function of this file not cached, every
/// argument repeating.
pub fn repeated(ctx: &Ctx, e: &Expr) -> Option<Finding> {
    let Expr::Call(call) = e else { return None };
    let Expr::Name(n) = &*call.func else {
        return None;
    };
    let f = ctx.m.functions.get(n.id.as_str())?;
    // A local name that shadows the function is not it.
    if ctx.binding(n.id.as_str()) != ctx.m.globals.get(n.id.as_str()) {
        return None;
    }
    let args = &call.arguments;
    let all = args
        .args
        .iter()
        .chain(args.keywords.iter().map(|k| &k.value));
    if args.args.iter().any(|a| matches!(a, Expr::Starred(_)))
        || !all.clone().all(|a| repeats(ctx, a))
    {
        return None;
    }
    if decorated(f) || !pure(f) {
        return None;
    }
    let mut finding = ctx.finding(
        Rule::RepeatedCall,
        vec![ctx.m.src.lines(e)],
        n.id.as_str(),
        example(f),
    );
    finding.call = Some((ctx.def_line(), super::code_first_line(ctx.m.src, f)));
    Some(finding)
}
