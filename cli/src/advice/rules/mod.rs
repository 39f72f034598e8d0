//! The rules: one walk over the module that hands each statement and expression, with
//! what is known around it (the names in scope, whether it runs in a loop), to each rule.
//! A rule returns a [`Finding`]: a slow pattern, where it is, and the fix in its own names.
//! Whether the finding becomes a hint is the profile's call ([`super::advise`]).

mod calls;
mod containers;
mod loops;
mod objects;
mod strings;

use super::scope::{kind_of, Attributes, Binding, Kind, Scope};
use super::source::Source;
use super::Rule;
use ruff_python_ast::comparable::ComparableExpr;
use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{self as ast, Expr, Stmt};
use ruff_text_size::Ranged;
use std::collections::{HashMap, HashSet};

/// A slow pattern in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule: Rule,
    /// The lines (first, last) the pattern's cost shows on; the hint goes on the costliest.
    pub spans: Vec<(u32, u32)>,
    /// The enclosing function's qualified name, `<module>` at top level.
    pub function: String,
    /// What the message names: the list, the string, the class, the function.
    pub subject: String,
    /// The fix, in the pattern's own names.
    pub example: String,
    /// For a call whose cost is the callee's (which the profile charges to the callee's
    /// lines, not the caller's): the first lines (`co_firstlineno`) of the function the
    /// call is in (`None` at module level) and of the callee.
    pub call: Option<(Option<u32>, u32)>,
}

/// File-wide facts the rules look things up in.
pub struct Module<'a> {
    pub text: &'a str,
    pub src: &'a Source,
    pub globals: Scope,
    pub attrs: Attributes,
    pub classes: HashMap<&'a str, &'a ast::StmtClassDef>,
    pub functions: HashMap<&'a str, &'a ast::StmtFunctionDef>,
}

/// A loop being walked: its first line and the names that change from one iteration to
/// the next.
struct Loop {
    line: u32,
    varying: HashSet<String>,
}

/// Where the walk is.
pub struct Ctx<'a> {
    pub m: &'a Module<'a>,
    /// Function and class scopes, innermost last (the module's is `m.globals`).
    scopes: Vec<Scope>,
    names: Vec<String>,
    /// The first line (`co_firstlineno`: the first decorator's, else the `def`'s) of each
    /// function being walked, innermost last.
    defs: Vec<u32>,
    loops: Vec<Loop>,
}

impl<'a> Ctx<'a> {
    pub fn text(&self, node: &impl Ranged) -> &'a str {
        &self.m.text[node.range()]
    }

    /// The `co_firstlineno` of the innermost function being walked.
    pub fn def_line(&self) -> Option<u32> {
        self.defs.last().copied()
    }

    pub fn in_loop(&self) -> bool {
        !self.loops.is_empty()
    }

    /// The header line of the innermost loop.
    pub fn loop_line(&self) -> Option<u32> {
        self.loops.last().map(|l| l.line)
    }

    /// Whether `e` uses no name that changes in the innermost loop.
    pub fn loop_invariant(&self, e: &Expr) -> bool {
        let Some(l) = self.loops.last() else {
            return false;
        };
        names_in(e).iter().all(|n| !l.varying.contains(*n))
    }

    pub fn function(&self) -> String {
        if self.names.is_empty() {
            "<module>".to_string()
        } else {
            self.names.join(".")
        }
    }

    /// What a name is bound to where it is used: the innermost function scope that binds
    /// it (class bodies are not seen from their methods), else the module's.
    pub fn binding(&self, name: &str) -> Option<Binding> {
        for (i, s) in self.scopes.iter().enumerate().rev() {
            let innermost = i + 1 == self.scopes.len();
            if s.is_declared_outside(name) {
                continue;
            }
            if s.function || innermost {
                if let Some(b) = s.get(name) {
                    return Some(b);
                }
            }
        }
        self.m.globals.get(name)
    }

    /// The kind of an expression: by its form, else by what its name or attribute is bound
    /// to.
    pub fn kind(&self, e: &Expr) -> Option<Kind> {
        kind_of(e).or_else(|| match e {
            Expr::Name(n) => self.binding(n.id.as_str())?.kind(),
            Expr::Attribute(a) => self.m.attrs.get(a.attr.as_str())?.kind(),
            _ => None,
        })
    }

    /// Whether `target` is a plain local of a function: a `STORE_FAST`, where CPython
    /// 3.11+ extends a string in place instead of copying it.
    pub fn fast_local(&self, target: &Expr) -> bool {
        let Expr::Name(n) = target else {
            return false;
        };
        match self.scopes.last() {
            Some(s) => s.function && !s.is_declared_outside(n.id.as_str()),
            None => false,
        }
    }

    fn finding(
        &self,
        rule: Rule,
        spans: Vec<(u32, u32)>,
        subject: &str,
        example: String,
    ) -> Finding {
        Finding {
            rule,
            spans,
            function: self.function(),
            subject: subject.to_string(),
            example,
            call: None,
        }
    }
}

/// A function's `co_firstlineno`: its first decorator's line, else its `def`'s.
pub fn code_first_line(src: &Source, f: &ast::StmtFunctionDef) -> u32 {
    match f.decorator_list.first() {
        Some(d) => src.first_line(d),
        None => src.first_line(f),
    }
}

/// Every name an expression reads.
pub fn names_in(e: &Expr) -> Vec<&str> {
    struct V<'e>(Vec<&'e str>);
    impl<'e> Visitor<'e> for V<'e> {
        fn visit_expr(&mut self, e: &'e Expr) {
            if let Expr::Name(n) = e {
                self.0.push(n.id.as_str());
            }
            visitor::walk_expr(self, e);
        }
    }
    let mut v = V(Vec::new());
    v.visit_expr(e);
    v.0
}

/// Whether two expressions are the same code (`counts[w]` and `counts[w]`).
pub fn same(a: &Expr, b: &Expr) -> bool {
    ComparableExpr::from(a) == ComparableExpr::from(b)
}

/// The names a loop changes on each iteration: its target's and every name assigned in
/// its body.
fn varying(target: Option<&Expr>, body: &[Stmt]) -> HashSet<String> {
    use ruff_python_ast::statement_visitor::{walk_stmt, StatementVisitor};
    struct V(HashSet<String>);
    impl V {
        fn target(&mut self, e: &Expr) {
            for n in names_in(e) {
                self.0.insert(n.to_string());
            }
        }
    }
    impl<'a> StatementVisitor<'a> for V {
        fn visit_stmt(&mut self, s: &'a Stmt) {
            match s {
                Stmt::Assign(a) => a.targets.iter().for_each(|t| self.target(t)),
                Stmt::AugAssign(a) => self.target(&a.target),
                Stmt::AnnAssign(a) => self.target(&a.target),
                Stmt::For(f) => self.target(&f.target),
                Stmt::With(w) => w
                    .items
                    .iter()
                    .filter_map(|i| i.optional_vars.as_deref())
                    .for_each(|t| self.target(t)),
                _ => {}
            }
            walk_stmt(self, s);
        }
    }
    let mut v = V(HashSet::new());
    if let Some(t) = target {
        v.target(t);
    }
    v.visit_body(body);
    v.0
}

/// Every finding in a parsed module.
pub fn findings(text: &str, src: &Source) -> Vec<Finding> {
    let body = &src.module.body;
    let mut classes = HashMap::new();
    let mut functions = HashMap::new();
    for s in body {
        match s {
            Stmt::ClassDef(c) => {
                classes.insert(c.name.as_str(), c);
            }
            Stmt::FunctionDef(f) => {
                functions.insert(f.name.as_str(), f);
            }
            _ => {}
        }
    }
    let m = Module {
        text,
        src,
        globals: Scope::of_body(body),
        attrs: Attributes::of_module(body),
        classes,
        functions,
    };
    let mut ctx = Ctx {
        m: &m,
        scopes: Vec::new(),
        names: Vec::new(),
        defs: Vec::new(),
        loops: Vec::new(),
    };
    let mut out = Vec::new();
    walk_body(&mut ctx, body, &mut out);
    out
}

fn walk_body(ctx: &mut Ctx, body: &[Stmt], out: &mut Vec<Finding>) {
    for (i, stmt) in body.iter().enumerate() {
        walk_stmt(ctx, stmt, body.get(i + 1), out);
    }
}

/// Walks the body of a loop with the loop pushed.
fn walk_loop(
    ctx: &mut Ctx,
    line: u32,
    target: Option<&Expr>,
    body: &[Stmt],
    out: &mut Vec<Finding>,
) {
    ctx.loops.push(Loop {
        line,
        varying: varying(target, body),
    });
    walk_body(ctx, body, out);
    ctx.loops.pop();
}

fn walk_stmt(ctx: &mut Ctx, stmt: &Stmt, next: Option<&Stmt>, out: &mut Vec<Finding>) {
    check_stmt(ctx, stmt, next, out);
    let line = ctx.m.src.first_line(stmt);
    match stmt {
        Stmt::FunctionDef(f) => {
            f.decorator_list
                .iter()
                .for_each(|d| walk_expr(ctx, &d.expression, out));
            let outer = std::mem::take(&mut ctx.loops);
            ctx.scopes.push(Scope::of_function(f));
            ctx.names.push(f.name.to_string());
            ctx.defs.push(code_first_line(ctx.m.src, f));
            walk_body(ctx, &f.body, out);
            ctx.defs.pop();
            ctx.names.pop();
            ctx.scopes.pop();
            ctx.loops = outer;
        }
        Stmt::ClassDef(c) => {
            let outer = std::mem::take(&mut ctx.loops);
            ctx.scopes.push(Scope::of_body(&c.body));
            ctx.names.push(c.name.to_string());
            walk_body(ctx, &c.body, out);
            ctx.names.pop();
            ctx.scopes.pop();
            ctx.loops = outer;
        }
        Stmt::For(f) => {
            walk_expr(ctx, &f.iter, out);
            walk_loop(ctx, line, Some(&f.target), &f.body, out);
            walk_body(ctx, &f.orelse, out);
        }
        Stmt::While(w) => {
            // The test runs on every iteration: it is in the loop.
            ctx.loops.push(Loop {
                line,
                varying: varying(None, &w.body),
            });
            walk_expr(ctx, &w.test, out);
            ctx.loops.pop();
            walk_loop(ctx, line, None, &w.body, out);
            walk_body(ctx, &w.orelse, out);
        }
        Stmt::If(i) => {
            walk_expr(ctx, &i.test, out);
            walk_body(ctx, &i.body, out);
            for c in &i.elif_else_clauses {
                if let Some(t) = &c.test {
                    walk_expr(ctx, t, out);
                }
                walk_body(ctx, &c.body, out);
            }
        }
        Stmt::With(w) => {
            w.items
                .iter()
                .for_each(|i| walk_expr(ctx, &i.context_expr, out));
            walk_body(ctx, &w.body, out);
        }
        Stmt::Try(t) => {
            walk_body(ctx, &t.body, out);
            for h in &t.handlers {
                let ast::ExceptHandler::ExceptHandler(h) = h;
                walk_body(ctx, &h.body, out);
            }
            walk_body(ctx, &t.orelse, out);
            walk_body(ctx, &t.finalbody, out);
        }
        Stmt::Match(mt) => {
            walk_expr(ctx, &mt.subject, out);
            mt.cases.iter().for_each(|c| walk_body(ctx, &c.body, out));
        }
        Stmt::Assign(a) => {
            a.targets.iter().for_each(|t| walk_expr(ctx, t, out));
            walk_expr(ctx, &a.value, out);
        }
        Stmt::AugAssign(a) => {
            walk_expr(ctx, &a.target, out);
            walk_expr(ctx, &a.value, out);
        }
        Stmt::AnnAssign(a) => {
            if let Some(v) = &a.value {
                walk_expr(ctx, v, out);
            }
        }
        Stmt::Expr(e) => walk_expr(ctx, &e.value, out),
        Stmt::Return(r) => {
            if let Some(v) = &r.value {
                walk_expr(ctx, v, out);
            }
        }
        Stmt::Delete(d) => d.targets.iter().for_each(|t| walk_expr(ctx, t, out)),
        Stmt::Raise(r) => {
            if let Some(e) = &r.exc {
                walk_expr(ctx, e, out);
            }
        }
        Stmt::Assert(a) => walk_expr(ctx, &a.test, out),
        _ => {}
    }
}

fn check_stmt(ctx: &Ctx, stmt: &Stmt, next: Option<&Stmt>, out: &mut Vec<Finding>) {
    if let Stmt::FunctionDef(f) = stmt {
        out.extend(calls::recursion(ctx, f));
    }
    if let Stmt::For(f) = stmt {
        out.extend(loops::manual_sum(ctx, f));
        out.extend(loops::append_loop(ctx, f));
    }
    if ctx.in_loop() {
        out.extend(strings::concat(ctx, stmt));
        out.extend(containers::front_stmt(ctx, stmt));
        out.extend(loops::manual_count(ctx, stmt, next));
    }
}

fn check_expr(ctx: &Ctx, e: &Expr, out: &mut Vec<Finding>) {
    if !ctx.in_loop() {
        return;
    }
    out.extend(containers::membership(ctx, e));
    out.extend(containers::front_call(ctx, e));
    out.extend(objects::no_slots(ctx, e));
    out.extend(calls::repeated(ctx, e));
}

/// Walks an expression; a comprehension's body (all but its first iterable) runs in a
/// loop of its own.
fn walk_expr(ctx: &mut Ctx, e: &Expr, out: &mut Vec<Finding>) {
    struct W<'c, 'a, 'o> {
        ctx: &'c mut Ctx<'a>,
        out: &'o mut Vec<Finding>,
    }
    impl<'e> Visitor<'e> for W<'_, '_, '_> {
        fn visit_expr(&mut self, e: &'e Expr) {
            check_expr(self.ctx, e, self.out);
            let (generators, elts): (&[ast::Comprehension], Vec<&Expr>) = match e {
                Expr::ListComp(c) => (&c.generators, vec![&c.elt]),
                Expr::SetComp(c) => (&c.generators, vec![&c.elt]),
                Expr::Generator(c) => (&c.generators, vec![&c.elt]),
                Expr::DictComp(c) => (
                    &c.generators,
                    c.key.iter().map(|k| &**k).chain([&*c.value]).collect(),
                ),
                _ => return visitor::walk_expr(self, e),
            };
            let Some(first) = generators.first() else {
                return;
            };
            self.visit_expr(&first.iter);
            let line = self.ctx.m.src.first_line(e);
            let mut varying = HashSet::new();
            for g in generators {
                varying.extend(names_in(&g.target).into_iter().map(str::to_string));
            }
            self.ctx.loops.push(Loop { line, varying });
            for (i, g) in generators.iter().enumerate() {
                if i > 0 {
                    self.visit_expr(&g.iter);
                }
                g.ifs.iter().for_each(|c| self.visit_expr(c));
            }
            elts.into_iter().for_each(|x| self.visit_expr(x));
            self.ctx.loops.pop();
        }
    }
    W { ctx, out }.visit_expr(e);
}
