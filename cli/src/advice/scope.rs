//! What names are bound to, as far as the source shows: each scope's assignments,
//! parameters' annotations, and, file-wide, what attributes are assigned. A rule asks
//! whether `hay` is a list; an answer of "don't know" keeps it quiet.

use ruff_python_ast::{self as ast, Expr, Stmt};
use std::collections::HashMap;

/// The kinds of value the rules tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    List,
    Set,
    Dict,
    /// `collections.Counter` and `defaultdict`: counting into them is the fast way.
    CountingDict,
    Deque,
    Str,
    Bytes,
    Number,
    /// Something else the source shows (a tuple, a bytearray, a function, a module).
    Other,
}

/// What one name is bound to in one scope: a kind, or several kinds / values the source
/// does not tell (a parameter, a call's result).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    Known(Kind),
    Unknown,
}

impl Binding {
    fn merge(self, other: Binding) -> Binding {
        if self == other {
            self
        } else {
            Binding::Unknown
        }
    }

    pub fn kind(self) -> Option<Kind> {
        match self {
            Binding::Known(k) => Some(k),
            Binding::Unknown => None,
        }
    }
}

/// The name a call calls: `f` for `f(x)`, `deque` for `collections.deque(x)`.
pub fn callee_name(func: &Expr) -> Option<&str> {
    match func {
        Expr::Name(n) => Some(n.id.as_str()),
        Expr::Attribute(a) => Some(a.attr.as_str()),
        _ => None,
    }
}

/// The kind an expression evaluates to, where its form alone says.
pub fn kind_of(e: &Expr) -> Option<Kind> {
    Some(match e {
        Expr::List(_) | Expr::ListComp(_) => Kind::List,
        Expr::Set(_) | Expr::SetComp(_) => Kind::Set,
        Expr::Dict(_) | Expr::DictComp(_) => Kind::Dict,
        Expr::StringLiteral(_) | Expr::FString(_) => Kind::Str,
        Expr::BytesLiteral(_) => Kind::Bytes,
        Expr::NumberLiteral(_) => Kind::Number,
        Expr::Tuple(_) | Expr::Lambda(_) | Expr::Generator(_) => Kind::Other,
        // `[0] * n` is a list; `"-" * n` a string.
        Expr::BinOp(b) => match (kind_of(&b.left), kind_of(&b.right)) {
            (Some(Kind::Number), Some(Kind::Number)) => Kind::Number,
            (Some(k @ (Kind::List | Kind::Str | Kind::Bytes)), _) => k,
            (_, Some(k @ (Kind::List | Kind::Str | Kind::Bytes))) => k,
            _ => return None,
        },
        Expr::Call(c) => return call_kind(c),
        _ => return None,
    })
}

fn call_kind(c: &ast::ExprCall) -> Option<Kind> {
    // A method call: only string methods that build strings are recognised.
    if let Expr::Attribute(a) = &*c.func {
        let string_receiver = matches!(kind_of(&a.value), Some(Kind::Str));
        return match a.attr.as_str() {
            "join" | "format" if string_receiver => Some(Kind::Str),
            "deque" => Some(Kind::Deque),
            "Counter" | "defaultdict" => Some(Kind::CountingDict),
            "OrderedDict" => Some(Kind::Dict),
            _ => None,
        };
    }
    Some(match callee_name(&c.func)? {
        "list" | "sorted" => Kind::List,
        "set" | "frozenset" => Kind::Set,
        "dict" | "OrderedDict" => Kind::Dict,
        "Counter" | "defaultdict" => Kind::CountingDict,
        "deque" => Kind::Deque,
        "str" | "repr" | "chr" | "ascii" | "hex" | "oct" | "bin" | "format" => Kind::Str,
        "bytes" => Kind::Bytes,
        "int" | "float" | "len" | "abs" | "round" | "ord" => Kind::Number,
        "tuple" | "bytearray" | "range" | "enumerate" | "zip" | "map" | "filter" => Kind::Other,
        _ => return None,
    })
}

/// The kind an annotation names: `list`, `list[int]`, `List[int]`, `typing.Deque`, ...
pub fn annotation_kind(e: &Expr) -> Option<Kind> {
    let name = match e {
        Expr::Subscript(s) => return annotation_kind(&s.value),
        Expr::Name(n) => n.id.as_str(),
        Expr::Attribute(a) => a.attr.as_str(),
        Expr::StringLiteral(_) => return None,
        _ => return None,
    };
    Some(match name {
        "list" | "List" => Kind::List,
        "set" | "Set" | "frozenset" | "FrozenSet" => Kind::Set,
        "dict" | "Dict" => Kind::Dict,
        "Counter" | "defaultdict" | "DefaultDict" => Kind::CountingDict,
        "deque" | "Deque" => Kind::Deque,
        "str" => Kind::Str,
        "bytes" => Kind::Bytes,
        "int" | "float" => Kind::Number,
        _ => Kind::Other,
    })
}

/// One function's (or the module's, or a class body's) names.
#[derive(Debug, Default)]
pub struct Scope {
    names: HashMap<String, Binding>,
    /// Names the scope declares `global` or `nonlocal`: assignments to them leave it.
    pub declared_outside: Vec<String>,
    /// Whether this is a function's scope (a local name there has CPython's fast
    /// locals), not the module's or a class body's.
    pub function: bool,
}

impl Scope {
    /// The names a function binds, with its parameters.
    pub fn of_function(f: &ast::StmtFunctionDef) -> Scope {
        let mut s = Scope {
            function: true,
            ..Scope::default()
        };
        let p = &f.parameters;
        let plain = p.posonlyargs.iter().chain(&p.args).chain(&p.kwonlyargs);
        for param in plain.map(|a| &a.parameter) {
            let b = param
                .annotation
                .as_deref()
                .and_then(annotation_kind)
                .map_or(Binding::Unknown, Binding::Known);
            s.bind(param.name.as_str(), b);
        }
        for param in p.vararg.iter().chain(&p.kwarg) {
            s.bind(param.name.as_str(), Binding::Known(Kind::Other));
        }
        s.collect(&f.body);
        s
    }

    /// The names a module (or class body) binds.
    pub fn of_body(body: &[Stmt]) -> Scope {
        let mut s = Scope::default();
        s.collect(body);
        s
    }

    pub fn get(&self, name: &str) -> Option<Binding> {
        self.names.get(name).copied()
    }

    pub fn is_declared_outside(&self, name: &str) -> bool {
        self.declared_outside.iter().any(|n| n == name)
    }

    fn bind(&mut self, name: &str, b: Binding) {
        let merged = match self.names.get(name) {
            Some(&old) => old.merge(b),
            None => b,
        };
        self.names.insert(name.to_string(), merged);
    }

    fn bind_target(&mut self, target: &Expr, b: Binding) {
        match target {
            Expr::Name(n) => self.bind(n.id.as_str(), b),
            Expr::Tuple(t) => t
                .elts
                .iter()
                .for_each(|e| self.bind_target(e, Binding::Unknown)),
            Expr::List(t) => t
                .elts
                .iter()
                .for_each(|e| self.bind_target(e, Binding::Unknown)),
            Expr::Starred(s) => self.bind_target(&s.value, Binding::Known(Kind::List)),
            _ => {}
        }
    }

    /// The bindings of a block and the blocks inside it, but not of nested functions and
    /// classes (their own scopes).
    fn collect(&mut self, body: &[Stmt]) {
        for stmt in body {
            match stmt {
                Stmt::Assign(a) => {
                    for t in &a.targets {
                        match (t, &*a.value) {
                            // `a, b = [], {}`: each name its own value's kind.
                            (Expr::Tuple(ts), Expr::Tuple(vs))
                                if ts.elts.len() == vs.elts.len() =>
                            {
                                for (t, v) in ts.elts.iter().zip(&vs.elts) {
                                    let b = kind_of(v).map_or(Binding::Unknown, Binding::Known);
                                    self.bind_target(t, b);
                                }
                            }
                            (t, v) => {
                                let b = kind_of(v).map_or(Binding::Unknown, Binding::Known);
                                self.bind_target(t, b);
                            }
                        }
                    }
                }
                Stmt::AnnAssign(a) => {
                    let b = annotation_kind(&a.annotation)
                        .or_else(|| a.value.as_deref().and_then(kind_of))
                        .map_or(Binding::Unknown, Binding::Known);
                    self.bind_target(&a.target, b);
                }
                Stmt::AugAssign(a) => {
                    // `n += 1` keeps what n is; an unbound one is some outer scope's.
                    if let Expr::Name(n) = &*a.target {
                        if self.get(n.id.as_str()).is_none() {
                            self.bind(n.id.as_str(), Binding::Unknown);
                        }
                    }
                }
                Stmt::For(f) => {
                    self.bind_target(&f.target, Binding::Unknown);
                    self.collect(&f.body);
                    self.collect(&f.orelse);
                }
                Stmt::While(w) => {
                    self.collect(&w.body);
                    self.collect(&w.orelse);
                }
                Stmt::If(i) => {
                    self.collect(&i.body);
                    i.elif_else_clauses
                        .iter()
                        .for_each(|c| self.collect(&c.body));
                }
                Stmt::With(w) => {
                    for item in &w.items {
                        if let Some(v) = &item.optional_vars {
                            self.bind_target(v, Binding::Unknown);
                        }
                    }
                    self.collect(&w.body);
                }
                Stmt::Try(t) => {
                    self.collect(&t.body);
                    for h in &t.handlers {
                        let ast::ExceptHandler::ExceptHandler(h) = h;
                        if let Some(n) = &h.name {
                            self.bind(n.as_str(), Binding::Known(Kind::Other));
                        }
                        self.collect(&h.body);
                    }
                    self.collect(&t.orelse);
                    self.collect(&t.finalbody);
                }
                Stmt::Match(m) => m.cases.iter().for_each(|c| self.collect(&c.body)),
                Stmt::FunctionDef(f) => self.bind(f.name.as_str(), Binding::Known(Kind::Other)),
                Stmt::ClassDef(c) => self.bind(c.name.as_str(), Binding::Known(Kind::Other)),
                Stmt::Import(i) => {
                    for a in &i.names {
                        let name = a.asname.as_ref().unwrap_or(&a.name);
                        let first = name.as_str().split('.').next().unwrap_or_default();
                        self.bind(first, Binding::Known(Kind::Other));
                    }
                }
                Stmt::ImportFrom(i) => {
                    for a in &i.names {
                        let name = a.asname.as_ref().unwrap_or(&a.name);
                        self.bind(name.as_str(), Binding::Known(Kind::Other));
                    }
                }
                Stmt::Global(g) => {
                    let names = g.names.iter().map(|n| n.as_str().to_string());
                    self.declared_outside.extend(names);
                }
                Stmt::Nonlocal(g) => {
                    let names = g.names.iter().map(|n| n.as_str().to_string());
                    self.declared_outside.extend(names);
                }
                _ => {}
            }
        }
    }
}

/// What attributes are assigned anywhere in the file (`self.text = ""` makes `.text` a
/// string): the rules' only view of objects' fields.
#[derive(Debug, Default)]
pub struct Attributes(HashMap<String, Binding>);

impl Attributes {
    pub fn of_module(body: &[Stmt]) -> Attributes {
        let mut a = Attributes::default();
        a.collect(body);
        a
    }

    pub fn get(&self, attr: &str) -> Option<Binding> {
        self.0.get(attr).copied()
    }

    fn collect(&mut self, body: &[Stmt]) {
        use ruff_python_ast::statement_visitor::{walk_stmt, StatementVisitor};
        struct V<'m>(&'m mut Attributes);
        impl<'a> StatementVisitor<'a> for V<'_> {
            fn visit_stmt(&mut self, stmt: &'a Stmt) {
                let (targets, value): (Vec<&Expr>, Option<&Expr>) = match stmt {
                    Stmt::Assign(a) => (a.targets.iter().collect(), Some(&a.value)),
                    Stmt::AnnAssign(a) => (vec![&a.target], a.value.as_deref()),
                    _ => (Vec::new(), None),
                };
                for t in targets {
                    if let Expr::Attribute(attr) = t {
                        let b = value
                            .and_then(kind_of)
                            .map_or(Binding::Unknown, Binding::Known);
                        let map = &mut (self.0).0;
                        let merged = match map.get(attr.attr.as_str()) {
                            Some(&old) => old.merge(b),
                            None => b,
                        };
                        map.insert(attr.attr.to_string(), merged);
                    }
                }
                walk_stmt(self, stmt);
            }
        }
        V(self).visit_body(body);
    }
}
