// rprof's HTML report. Draws the page from the JSON in #rprof-data, which rprof-report
// wrote; every figure in it was computed there, this script only lays them out.
// Text from the profiled program only ever goes into text nodes and attribute values,
// never into markup: nothing here assigns innerHTML.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("rprof-data").textContent);
  const MEM = D.memory;
  const ROWS = 500; // rows a table draws at once; "show more" draws the next ones
  const SVG = "http://www.w3.org/2000/svg";

  // ------------------------------------------------------------------ helpers
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (typeof v === "function") e.addEventListener(k.replace(/^on/, ""), v);
      else e.setAttribute(k, String(v));
    }
    for (const kid of kids) add(e, kid);
    return e;
  }
  function add(e, kid) {
    if (kid === null || kid === undefined || kid === false) return;
    if (Array.isArray(kid)) kid.forEach((k) => add(e, k));
    else if (kid instanceof Node) e.appendChild(kid);
    else e.appendChild(document.createTextNode(String(kid)));
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }
  const pct = (x) => (x ? x.toFixed(1) + "%" : "");
  function mib(x) {
    if (x === null || x === undefined || x <= 0) return "";
    return x < 1 ? x.toFixed(2) : x < 1000 ? x.toFixed(1) : x.toFixed(0);
  }
  const secs = (x) => x.toFixed(3) + " s";
  const where = (file, line) => (line ? file + ":" + line : file);

  // A stacked bar of CPU shares [python, native, system, total], 100% = the whole bar.
  function cpuBar(c) {
    return el("span", { class: "bar", title: "Python " + pct(c[0]) + ", native " + pct(c[1]) + ", system " + pct(c[2]) },
      el("span", { class: "py", style: "width:" + Math.min(100, c[0]) + "%" }),
      el("span", { class: "native", style: "width:" + Math.min(100, c[1]) + "%" }),
      el("span", { class: "sys", style: "width:" + Math.min(100, c[2]) + "%" }));
  }
  // A sparkline of [fraction of the run, MiB] points, scaled to `max`.
  function spark(points, max, w, h) {
    const s = svg("svg", { class: "spark", width: w, height: h, viewBox: "0 0 " + w + " " + h });
    if (!points || !points.length || !(max > 0)) return s;
    let d = [];
    let last = 0;
    for (const [t, v] of points) {
      const x = (t * w).toFixed(1);
      d.push(x + "," + (h - (last / max) * (h - 1)).toFixed(1));
      d.push(x + "," + (h - (v / max) * (h - 1)).toFixed(1));
      last = v;
    }
    d.push(w + "," + (h - (last / max) * (h - 1)).toFixed(1));
    s.appendChild(svg("polyline", { points: d.join(" ") }));
    return s;
  }
  function legend() {
    const item = (cls, name) => el("span", {}, el("i", { style: "background:var(--" + cls + ")" }), name);
    return el("div", { class: "legend" }, item("py", "Python"), item("native", "native"), item("sys", "system"),
      MEM ? item("mem", "memory") : null);
  }

  // A table whose columns sort on click and whose rows draw ROWS at a time.
  // cols: [{name, key (row -> sortable value) or none, cell (row -> node|text), cls}]
  function sortedTable(cols, rowsOf, initial, id, page) {
    const step = page || ROWS;
    const state = { key: initial.key, dir: initial.dir };
    const table = el("table", { id: id });
    const head = el("tr");
    const tbody = el("tbody");
    table.append(el("thead", {}, head), tbody);
    cols.forEach((c, i) => {
      const th = el("th", { class: (c.cls || "") + (c.key ? " sort" : ""), "data-col": c.name }, c.name);
      if (c.key) {
        th.addEventListener("click", () => {
          if (state.key === i) state.dir = -state.dir;
          else { state.key = i; state.dir = c.asc ? 1 : -1; }
          draw();
        });
      }
      head.appendChild(th);
    });
    function draw() {
      [...head.children].forEach((th, i) => {
        th.classList.toggle("asc", i === state.key && state.dir > 0);
        th.classList.toggle("desc", i === state.key && state.dir < 0);
      });
      const rows = rowsOf(state.key === null ? null : cols[state.key].name, state);
      if (state.key !== null && rows.sortable) {
        const key = cols[state.key].key;
        rows.list.sort((a, b) => {
          const x = key(a), y = key(b);
          return (x < y ? -1 : x > y ? 1 : 0) * state.dir || (a.order - b.order);
        });
      }
      tbody.replaceChildren();
      if (!rows.list.length && rows.empty) {
        tbody.appendChild(el("tr", { class: "cold" }, el("td", { colspan: cols.length, class: "src" }, rows.empty)));
      }
      let shown = 0;
      function more() {
        const end = Math.min(rows.list.length, shown + step);
        const frag = document.createDocumentFragment();
        for (; shown < end; shown++) frag.appendChild(rows.render(rows.list[shown], redrawRow));
        if (shown < rows.list.length) {
          const left = rows.list.length - shown;
          frag.appendChild(el("tr", { class: "more", onclick: (e) => { e.currentTarget.remove(); more(); } },
            el("td", { colspan: cols.length }, "Show " + Math.min(step, left) + " more rows (" + left + " not shown)")));
        }
        tbody.appendChild(frag);
      }
      more();
    }
    function redrawRow() { draw(); }
    table.redraw = draw;
    draw();
    return table;
  }

  // ------------------------------------------------------------------ the run
  function runInfo() {
    const r = D.run;
    const dl = el("dl", { class: "run" });
    const item = (k, v, bad) => dl.append(el("dt", {}, k), el("dd", { class: bad ? "bad" : null }, v));
    item("Command", r.command);
    item("Interpreter", r.python ? "Python " + r.python + " (" + r.exe + ")" : r.exe + " (not Python)");
    if (r.python) item("Charged", r.charging);
    item("PID", r.pid);
    item("Duration", (r.ended ? "" : "at least ") + secs(r.elapsed_s) + " wall");
    item("CPU time", secs(r.cpu_s) + " sampled in " + r.samples + " samples" +
      (r.profiler_s > 0 ? ", " + secs(r.profiler_s) + " more in rprof's own hooks" : ""));
    item("Sampling", r.clock + " clock, " + r.hz + " Hz asked, " +
      (r.achieved_hz === null ? "none achieved" : r.achieved_hz + " Hz achieved") + "; modes " + r.modes.join(", ") +
      (MEM ? "; memory sampled every " + r.mem_rate_kib + " KiB on average" : ""));
    item("Dropped", r.dropped === null ? "unknown (the trace has no end)" : r.dropped + " samples", r.dropped > 0);
    item("Trace", r.killed ? "the process was killed before rprof finished the trace" :
      r.stopped ? "stops early: " + r.stopped : r.damaged ? "damaged (see the warnings)" : "complete",
      r.killed || r.stopped || r.damaged);
    return dl;
  }

  // ------------------------------------------------------------------ lines
  const lineView = { all: false };
  const fileTables = [];

  function lineCols(file) {
    const cols = [
      { name: "Line", key: (r) => r.l ? r.l.line : r.n, asc: true },
      { name: "CPU", key: (r) => r.l ? r.l.cpu[3] : -1, cell: (r) => r.l ? cpuBar(r.l.cpu) : "" },
      { name: "Python", key: (r) => r.l ? r.l.cpu[0] : -1, cell: (r) => r.l ? pct(r.l.cpu[0]) : "" },
      { name: "Native", key: (r) => r.l ? r.l.cpu[1] : -1, cell: (r) => r.l ? pct(r.l.cpu[1]) : "" },
      { name: "System", key: (r) => r.l ? r.l.cpu[2] : -1, cell: (r) => r.l ? pct(r.l.cpu[2]) : "" },
      { name: "Total", key: (r) => r.l ? r.l.cpu[3] : -1, cell: (r) => r.l ? pct(r.l.cpu[3]) : "" },
    ];
    if (D.gpu) {
      const g = (i) => (r) => r.l && r.l.gpu ? r.l.gpu[i] : -1;
      cols.push({ name: "GPU%", key: g(0), cell: (r) => r.l && r.l.gpu ? pct(r.l.gpu[0]) : "" });
      cols.push({ name: "GPU MiB", key: g(1), cell: (r) => r.l && r.l.gpu ? mib(r.l.gpu[1]) : "" });
    }
    if (MEM) {
      const m = (i) => (r) => r.l && r.l.mem && r.l.mem[i] !== null ? r.l.mem[i] : -1;
      const names = ["Avg MiB", "Peak MiB", "Alloc MiB", "Growth MiB"];
      names.forEach((name, i) => cols.push({ name, key: m(i), cell: (r) => r.l && r.l.mem ? mib(r.l.mem[i]) : "" }));
      cols.push({ name: "Py%", key: m(4), cell: (r) => r.l && r.l.mem && r.l.mem[4] !== null ? r.l.mem[4] + "%" : "" });
      cols.push({ name: "Copy MiB/s", key: m(5), cell: (r) => r.l && r.l.mem ? mib(r.l.mem[5]) : "" });
      cols.push({ name: "Timeline", cell: (r) => r.l && r.l.spark ? spark(r.l.spark, r.l.mem[1], 80, 16) : "" });
    }
    // A row with no line (a native function without debug line info) shows its function.
    cols.push({ name: "Source", cls: "src", cell: (r) => (r.l && r.l.function) || sourceOf(file, r.l ? r.l.line : r.n) });
    return cols;
  }
  function sourceOf(file, n) {
    if (!file.source || n < 1 || n > file.source.length) return "";
    return file.source[n - 1];
  }

  // The rows of a file's table: hot lines, or every line with cold stretches collapsed.
  function fileRows(file, cols) {
    const expanded = new Set();
    return (sortCol, state) => {
      let list = [];
      const profiled = file.lines.filter((l) => lineView.all || l.hot);
      profiled.forEach((l, i) => list.push({ l, order: i }));
      const byLine = sortCol === "Line" || sortCol === null;
      if (lineView.all && byLine && file.source) {
        // Every source line, in order; runs of lines without samples fold into one row.
        const at = new Map(file.lines.map((l) => [l.line, l]));
        const extra = file.lines.filter((l) => l.line < 1 || l.line > file.source.length);
        list = extra.map((l, i) => ({ l, order: -1000000 + i }));
        let run = [];
        const flush = () => {
          if (!run.length) return;
          const first = run[0];
          if (run.length <= 3 || expanded.has(first)) run.forEach((n) => list.push({ n, order: n }));
          else list.push({ gap: run.slice(), order: first });
          run = [];
        };
        for (let n = 1; n <= file.source.length; n++) {
          if (at.has(n)) { flush(); list.push({ l: at.get(n), order: n }); }
          else run.push(n);
        }
        flush();
        if (state.dir < 0) list.reverse();
        return { list, sortable: false, render };
      }
      const empty = "(no line has " + D.threshold + "% of the time" + (MEM ? " or memory" : "") + ")";
      return { list, sortable: true, render, empty };
    };
    function render(r, redraw) {
      if (r.gap) {
        const g = r.gap;
        return el("tr", { class: "gap", onclick: () => { expanded.add(g[0]); redraw(); } },
          el("td", { colspan: cols.length }, "\u22EF " + g.length + " lines without samples (" + g[0] + "\u2013" +
            g[g.length - 1] + "), click to show"));
      }
      const tr = el("tr", { class: r.l ? (r.l.hot ? "hot" : "") : "cold" });
      for (const c of cols) {
        const v = c.cell ? c.cell(r) : (r.l ? (r.l.line || "") : r.n);
        tr.appendChild(el("td", { class: c.cls || null }, v));
      }
      return tr;
    }
  }

  function fileSection(file, i) {
    const d = el("details", { class: "file", id: "file-" + i });
    d.appendChild(el("summary", {}, el("span", { class: "path" }, file.path + (file.native ? " [native]" : "")),
      cpuBar(file.cpu), el("span", {}, pct(file.cpu[3]) || "0%"),
      MEM && file.alloc_mib > 0 ? el("span", { class: "muted" }, mib(file.alloc_mib) + " MiB allocated") : null));
    let table = null;
    const fill = () => {
      if (table || !d.open) return;
      const cols = lineCols(file);
      if (!file.source && file.lines.some((l) => l.line > 0)) {
        d.appendChild(el("div", { class: "muted", style: "padding:4px 10px" }, "source not available"));
      }
      table = sortedTable(cols, fileRows(file, cols), { key: 0, dir: 1 }, null);
      table.classList.add("lines");
      d.appendChild(el("div", { class: "scroll" }, table));
      fileTables.push(table);
    };
    d.addEventListener("toggle", fill);
    d.fill = fill;
    return d;
  }

  function linesSection() {
    const s = el("section", { id: "lines" }, el("h2", {}, "Lines"));
    const hotB = el("button", { id: "show-hot", class: "on" }, "Hot lines");
    const allB = el("button", { id: "show-all" }, "All lines");
    const files = el("div", { id: "files" });
    const note = el("span", { class: "muted" });
    function show() {
      hotB.classList.toggle("on", !lineView.all);
      allB.classList.toggle("on", lineView.all);
      note.textContent = lineView.all ? "every file, every line (stretches without samples folded)" :
        "lines with at least " + D.threshold + "% of the time" + (MEM ? " or memory" : "");
      files.replaceChildren();
      fileTables.length = 0;
      let opened = 0;
      D.files.forEach((f, i) => {
        if (!lineView.all && !f.shown) return;
        const sec = fileSection(f, i);
        files.appendChild(sec);
        if (opened < 5 && f.lines.length) { sec.open = true; opened++; sec.fill(); }
      });
      if (!files.children.length) files.appendChild(el("p", { class: "muted" }, "No samples."));
    }
    hotB.addEventListener("click", () => { lineView.all = false; show(); });
    allB.addEventListener("click", () => { lineView.all = true; show(); });
    s.append(el("div", { class: "controls" }, el("span", { class: "switch" }, hotB, allB), note, legend()), files);
    show();
    return s;
  }

  // ------------------------------------------------------------------ functions
  function functionsSection() {
    const s = el("section", { id: "functions" }, el("h2", {}, "Functions"));
    // Functions only seen on memory samples' stacks have nothing of their own to list.
    const fns = D.functions.map((f, i) => ({ f, order: i })).filter((r) => r.f.listed);
    const cols = [
      { name: "Function", cls: "name", key: (r) => r.f.name, asc: true, cell: (r) => r.f.name + (r.f.native ? " [native]" : "") },
      { name: "Defined at", cls: "name", key: (r) => r.f.file, asc: true, cell: (r) => where(r.f.file, r.f.line) },
      { name: "Self", key: (r) => r.f.self[3], cell: (r) => cpuBar(r.f.self) },
      { name: "Self %", key: (r) => r.f.self[3], cell: (r) => pct(r.f.self[3]) },
      { name: "Total %", key: (r) => r.f.total, cell: (r) => pct(r.f.total) },
    ];
    if (MEM) {
      cols.push({ name: "Alloc MiB", key: (r) => r.f.alloc_mib, cell: (r) => mib(r.f.alloc_mib) });
      cols.push({ name: "Peak MiB", key: (r) => r.f.peak_mib, cell: (r) => mib(r.f.peak_mib) });
    }
    const render = (r) => el("tr", {}, cols.map((c) => el("td", { class: c.cls || null }, c.cell(r))));
    const t = sortedTable(cols, () => ({ list: fns.slice(), sortable: true, render }), { key: 3, dir: -1 }, "function-table", 30);
    s.appendChild(el("div", { class: "scroll" }, t));
    return s;
  }

  // ------------------------------------------------------------------ flame graph
  function flameSection() {
    const F = D.flame;
    const n = F.parent.length;
    const s = el("section", { id: "flame-graph" }, el("h2", {}, "Flame graph"));
    const cpuB = el("button", { id: "flame-cpu", class: "on" }, "CPU time");
    const memB = el("button", { id: "flame-mem" }, "Memory allocated");
    const search = el("input", { type: "search", id: "flame-search", placeholder: "Search a function\u2026" });
    const reset = el("button", { id: "flame-reset" }, "Reset zoom");
    const info = el("div", { id: "flame-info" });
    const canvas = el("canvas", { id: "flame" });
    const tip = el("div", { id: "flame-tip" });
    const wrap = el("div", { id: "flame-wrap" }, canvas);
    s.append(el("div", { class: "controls" }, el("span", { class: "switch" }, cpuB, memB), search, reset,
      F.dropped ? el("span", { class: "muted" }, F.dropped + " lightest nodes left out") : null), info, wrap, tip);
    if (!MEM) memB.disabled = true;

    const children = Array.from({ length: n }, () => []);
    const depth = new Int32Array(n);
    for (let i = 1; i < n; i++) { children[F.parent[i]].push(i); depth[i] = depth[F.parent[i]] + 1; }
    let maxDepth = 0;
    for (let i = 0; i < n; i++) maxDepth = Math.max(maxDepth, depth[i]);
    const cpu = Float64Array.from({ length: n }, (_, i) => F.py[i] + F.native[i] + F.sys[i]);
    const name = (i) => i === 0 ? "all" : F.label[i] < 0 ? F.pseudo[-F.label[i] - 1] : D.functions[F.label[i]].name;
    const fn = (i) => (i > 0 && F.label[i] >= 0 ? D.functions[F.label[i]] : null);
    const st = { metric: "cpu", zoom: 0, term: "", rows: [], drawn: [] };
    const weight = (i) => (st.metric === "cpu" ? cpu[i] : F.alloc[i]);
    const ROW = 18;
    const MAX_ROWS = 800; // deeper than this is not drawn (canvas height limit)

    function order() {
      for (const c of children) c.sort((a, b) => weight(b) - weight(a) || a - b);
    }
    function color(i) {
      const f = fn(i);
      if (st.term) {
        return name(i).toLowerCase().includes(st.term) ? "#d6338c" : "#e3e6e9";
      }
      if (!f) return "#b8c0c8";
      // A stable shade per function, so the same function reads the same everywhere.
      let h = 0;
      for (const ch of f.name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
      return f.native ? "hsl(" + (200 + (h % 30)) + ",55%," + (58 + (h % 17)) + "%)" :
        "hsl(" + (18 + (h % 28)) + ",80%," + (58 + (h % 15)) + "%)";
    }
    function draw() {
      const width = Math.max(300, wrap.clientWidth - 2);
      const ancestors = [];
      for (let a = st.zoom; a !== 0; a = F.parent[a]) ancestors.unshift(F.parent[a]);
      const rows = Math.min(MAX_ROWS, ancestors.length + 1 + maxDepth - depth[st.zoom]);
      const dpr = window.devicePixelRatio || 1;
      canvas.width = width * dpr;
      canvas.height = (rows * ROW + 2) * dpr;
      canvas.style.width = width + "px";
      canvas.style.height = rows * ROW + 2 + "px";
      const g = canvas.getContext("2d");
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      g.font = "11px ui-monospace, monospace";
      g.textBaseline = "middle";
      st.rows = Array.from({ length: rows }, () => []);
      st.drawn = [];
      const total = weight(st.zoom);
      const box = (i, x, w, row) => {
        g.fillStyle = color(i);
        g.fillRect(x, row * ROW, Math.max(w - 0.5, 0.5), ROW - 1);
        if (w > 28) {
          g.fillStyle = "#1d2228";
          const label = name(i);
          const fit = Math.floor((w - 6) / 6.6);
          g.fillText(label.length > fit ? label.slice(0, Math.max(fit - 1, 1)) + "\u2026" : label, x + 3, row * ROW + ROW / 2);
        }
        st.rows[row].push([x, x + w, i]);
        st.drawn.push(i);
      };
      ancestors.forEach((a, row) => box(a, 0, width, row));
      const base = ancestors.length;
      if (!(total > 0)) {
        box(st.zoom, 0, width, base);
        info.textContent = "Nothing sampled for this metric.";
        return;
      }
      const scale = width / total;
      const stack = [[st.zoom, 0, base]];
      while (stack.length) {
        const [i, x, row] = stack.pop();
        const w = weight(i) * scale;
        if (w < 0.5 || row >= rows) continue;
        box(i, x, w, row);
        // Children right to left on the stack, so they draw (and list) left to right.
        const kids = children[i];
        let used = 0;
        for (const k of kids) used += weight(k) * scale;
        let cx = x + used;
        for (let j = kids.length - 1; j >= 0; j--) {
          const kw = weight(kids[j]) * scale;
          cx -= kw;
          stack.push([kids[j], cx, row + 1]);
        }
      }
      for (const r of st.rows) r.sort((a, b) => a[0] - b[0]);
    }
    function at(ev) {
      const rect = canvas.getBoundingClientRect();
      const x = ev.clientX - rect.left, row = Math.floor((ev.clientY - rect.top) / ROW);
      const r = st.rows[row];
      if (!r) return null;
      let lo = 0, hi = r.length - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (r[mid][1] < x) lo = mid + 1;
        else if (r[mid][0] > x) hi = mid - 1;
        else return r[mid][2];
      }
      return null;
    }
    function describe(i) {
      const f = fn(i);
      let t = name(i) + (f ? "  " + where(f.file, f.line) + (f.native ? " [native]" : "") : "") + "\n";
      t += "CPU " + (cpu[i].toFixed(2)) + "% (Python " + F.py[i].toFixed(2) + "%, native " + F.native[i].toFixed(2) +
        "%, system " + F.sys[i].toFixed(2) + "%)";
      if (MEM) t += "\nallocated " + (mib(F.alloc[i]) || "0") + " MiB";
      return t;
    }
    canvas.addEventListener("mousemove", (ev) => {
      const i = at(ev);
      if (i === null) { tip.style.display = "none"; return; }
      tip.textContent = describe(i);
      tip.style.display = "block";
      tip.style.left = Math.min(ev.clientX + 12, window.innerWidth - 540) + "px";
      tip.style.top = ev.clientY + 14 + "px";
      info.textContent = describe(i).replace(/\n/g, "  \u2502  ");
    });
    canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
    canvas.addEventListener("click", (ev) => {
      const i = at(ev);
      if (i !== null) { st.zoom = i; draw(); }
    });
    reset.addEventListener("click", () => { st.zoom = 0; draw(); });
    const metric = (m) => {
      st.metric = m;
      cpuB.classList.toggle("on", m === "cpu");
      memB.classList.toggle("on", m === "mem");
      order();
      draw();
    };
    cpuB.addEventListener("click", () => metric("cpu"));
    memB.addEventListener("click", () => metric("mem"));
    search.addEventListener("input", () => { st.term = search.value.trim().toLowerCase(); draw(); });
    let pending = 0;
    window.addEventListener("resize", () => { cancelAnimationFrame(pending); pending = requestAnimationFrame(draw); });
    order();
    // Drawn once the section is in the document and has a width (see the end).
    window.rprof.flame = {
      redraw: draw,
      drawn: () => st.drawn.map(name),
      matches: () => st.term ? st.drawn.filter((i) => name(i).toLowerCase().includes(st.term)).map(name) : [],
      zoom: (i) => { st.zoom = i; draw(); },
      zoomed: () => name(st.zoom),
      // Where a frame is drawn: [left, right, middle of its row] on the canvas.
      where: (label) => {
        for (let row = 0; row < st.rows.length; row++) {
          for (const [x0, x1, i] of st.rows[row]) if (name(i) === label) return [x0, x1, row * ROW + ROW / 2];
        }
        return null;
      },
      metric: () => st.metric,
      find: (label) => { for (let i = 0; i < n; i++) if (name(i) === label) return i; return -1; },
    };
    return s;
  }

  // ------------------------------------------------------------------ memory
  function memorySection() {
    const fp = D.footprint;
    const s = el("section", { id: "memory" }, el("h2", {}, "Memory"));
    if (!MEM) { s.appendChild(el("p", { class: "muted" }, "Memory was not profiled (rprof run --memory).")); return s; }
    const dl = el("dl", { class: "run" });
    const item = (k, v) => dl.append(el("dt", {}, k), el("dd", {}, v));
    item("Peak", mib(fp.peak_mib) + " MiB at " + secs(fp.peak_s) + (fp.exact ? ", " + fp.python_pct +
      "% of it in Python's allocator" : " (estimated from samples)"));
    if (fp.peak_at) {
      item("Reached at", where(fp.peak_at.file, fp.peak_at.line) + (fp.peak_at.text ? "  " + fp.peak_at.text.trim() : "") +
        " (estimated peak " + mib(fp.estimated_peak_mib) + " MiB at " + secs(fp.estimated_peak_s) + ")");
    }
    item("Allocated", (mib(fp.alloc_mib) || "0") + " MiB in all (" + fp.alloc_samples + " samples), " +
      (mib(fp.no_python_mib) || "0") + " MiB with no Python frame; " + fp.growth_pct + "% still live at exit");
    if (fp.exit_s !== null) item("Exit", "the interpreter began finalizing at " + secs(fp.exit_s) + ": later frees are teardown");
    if (fp.copied_mib > 0) item("Copied", mib(fp.copied_mib) + " MiB");
    s.append(dl, el("h2", {}, "Footprint over time"), chart(fp));
    s.appendChild(el("h2", {}, "Likely leaks"));
    if (!D.leaks.length) s.appendChild(el("p", { class: "muted", id: "no-leaks" }, "None found."));
    else {
      const rows = D.leaks.map((l, i) => ({ l, order: i }));
      const cols = [
        { name: "Where", cls: "name", key: (r) => r.l.file + r.l.line, asc: true, cell: (r) => where(r.l.file, r.l.line) },
        { name: "Not freed MiB", key: (r) => r.l.growth_mib, cell: (r) => mib(r.l.growth_mib) },
        { name: "MiB/s", key: (r) => r.l.rate_mib_s, cell: (r) => mib(r.l.rate_mib_s) },
        { name: "Likelihood", key: (r) => r.l.likelihood, cell: (r) => r.l.likelihood + "%" },
        { name: "Source", cls: "src", cell: (r) => r.l.text || "" },
      ];
      const render = (r) => el("tr", {}, cols.map((c) => el("td", { class: c.cls || null }, c.cell(r))));
      s.appendChild(el("div", { class: "scroll" },
        sortedTable(cols, () => ({ list: rows.slice(), sortable: true, render }), { key: 1, dir: -1 }, "leak-table")));
    }
    return s;
  }
  function chart(fp) {
    const W = 900, H = 220, L = 50, B = 20;
    const c = svg("svg", { class: "chart", viewBox: "0 0 " + W + " " + H, id: "footprint" });
    const pts = fp.timeline;
    const max = Math.max(fp.peak_mib, ...pts.map((p) => p[1]), 1e-9);
    const x = (t) => L + t * (W - L - 10), y = (v) => H - B - (v / max) * (H - B - 10);
    c.appendChild(svg("line", { class: "axis", x1: L, y1: H - B, x2: W - 10, y2: H - B }));
    c.appendChild(svg("line", { class: "axis", x1: L, y1: 10, x2: L, y2: H - B }));
    const label = (tx, ty, text, anchor) => {
      const t = svg("text", { x: tx, y: ty, "text-anchor": anchor || "start" });
      t.textContent = text;
      c.appendChild(t);
    };
    label(L - 4, y(max) + 4, mib(max) + " MiB", "end");
    label(L - 4, H - B, "0", "end");
    label(L, H - 4, "0 s");
    label(W - 10, H - 4, secs(D.run.elapsed_s), "end");
    if (!pts.length) {
      label(W / 2, H / 2, fp.exact ? "no allocator counters" : "no allocator counters in this trace: peak estimated from samples", "middle");
    } else {
      let d = "M" + x(pts[0][0]) + "," + y(0);
      let last = 0;
      for (const [t, v] of pts) { d += " L" + x(t).toFixed(1) + "," + y(last).toFixed(1) + " L" + x(t).toFixed(1) + "," + y(v).toFixed(1); last = v; }
      d += " L" + x(1) + "," + y(last) + " L" + x(1) + "," + y(0) + " Z";
      c.appendChild(svg("path", { class: "area", d }));
    }
    // The program's marks (rprof_mark) across the footprint.
    for (const m of D.marks) c.appendChild(svg("line", { class: "mark", x1: x(m.t), y1: 10, x2: x(m.t), y2: H - B, stroke: "currentColor", "stroke-dasharray": "4 3" }));
    const end = D.run.elapsed_s || 1;
    const px = x(Math.min(1, fp.peak_s / end)), py = y(fp.peak_mib);
    c.appendChild(svg("circle", { class: "peak", cx: px, cy: py, r: 4 }));
    label(Math.min(px + 6, W - 200), Math.max(py - 6, 20), "peak " + mib(fp.peak_mib) + " MiB" +
      (fp.peak_at ? " at " + where(fp.peak_at.file.split("/").pop(), fp.peak_at.line) : ""));
    return c;
  }

  // ------------------------------------------------------------------ threads, warnings
  function threadsSection() {
    const s = el("section", { id: "threads" }, el("h2", {}, "Threads"));
    const rows = D.threads.map((t, i) => ({ t, order: i }));
    const cols = [
      { name: "PID", key: (r) => r.t.pid, asc: true, cell: (r) => r.t.pid },
      { name: "TID", key: (r) => r.t.tid, asc: true, cell: (r) => r.t.tid },
      { name: "Name", cls: "name", key: (r) => r.t.name || "", asc: true, cell: (r) => r.t.name || "" },
      { name: "Share", key: (r) => r.t.cpu[3], cell: (r) => cpuBar(r.t.cpu) },
      { name: "CPU %", key: (r) => r.t.cpu[3], cell: (r) => pct(r.t.cpu[3]) },
      { name: "Python", key: (r) => r.t.cpu[0], cell: (r) => pct(r.t.cpu[0]) },
      { name: "Native", key: (r) => r.t.cpu[1], cell: (r) => pct(r.t.cpu[1]) },
      { name: "System", key: (r) => r.t.cpu[2], cell: (r) => pct(r.t.cpu[2]) },
      { name: "Samples", key: (r) => r.t.samples, cell: (r) => r.t.samples },
    ];
    const render = (r) => el("tr", {}, cols.map((c) => el("td", { class: c.cls || null }, c.cell(r))));
    s.appendChild(el("div", { class: "scroll" },
      sortedTable(cols, () => ({ list: rows.slice(), sortable: true, render }), { key: 4, dir: -1 }, "thread-table")));
    return s;
  }
  // A merged run's processes, as the text report's Processes table; shares are of the
  // whole run's CPU.
  function processesSection() {
    const s = el("section", { id: "processes" }, el("h2", {}, "Processes (" + D.processes.length + ")"));
    s.appendChild(el("p", { class: "muted" }, "Merged into this report: lines, functions, threads and memory are " +
      "summed over these processes; shares are of the whole run."));
    const rows = D.processes.map((p, i) => ({ p, order: i }));
    const cols = [
      { name: "PID", key: (r) => r.p.pid, asc: true, cell: (r) => r.p.pid },
      { name: "Parent", key: (r) => r.p.ppid, asc: true, cell: (r) => r.p.ppid },
      { name: "CPU %", key: (r) => r.p.cpu_pct, cell: (r) => r.p.cpu_pct.toFixed(1) + "%" },
      { name: "Peak MiB", key: (r) => r.p.peak_mib, cell: (r) => mib(r.p.peak_mib) },
      { name: "How it ended", cls: "name", key: (r) => r.p.ended, asc: true, cell: (r) => r.p.ended },
      { name: "Command", cls: "src", key: (r) => r.p.command, asc: true, cell: (r) => r.p.command },
    ];
    const render = (r) => el("tr", {}, cols.map((c) => el("td", { class: c.cls || null }, c.cell(r))));
    s.appendChild(el("div", { class: "scroll" },
      sortedTable(cols, () => ({ list: rows.slice(), sortable: true, render }), { key: 2, dir: -1 }, "process-table")));
    if (D.left_out.length) {
      s.append(el("h2", {}, "Left out (" + D.left_out.length + " traces given, not in this report)"),
        el("ul", { id: "left-out" }, D.left_out.map((t) => el("li", {}, t.trace + ": " + t.why))));
    }
    return s;
  }
  function adviceSection() {
    const s = el("section", { id: "advice" }, el("h2", {}, "Advice"));
    if (!D.advice.length) {
      s.appendChild(el("p", { class: "muted", id: "no-advice" }, "No hot line matches a known slow pattern."));
      return s;
    }
    const rows = D.advice.map((h, i) => ({ h, order: i }));
    const cols = [
      { name: "Where", cls: "name", key: (r) => r.h.file + r.h.lineno, asc: true, cell: (r) => where(r.h.file, r.h.lineno) },
      { name: "Rule", cls: "name", key: (r) => r.h.rule, asc: true, cell: (r) => r.h.rule },
      { name: "CPU", key: (r) => r.h.cpu_percent, cell: (r) => pct(r.h.cpu_percent) },
      { name: "Alloc MiB", key: (r) => r.h.alloc_mb, cell: (r) => mib(r.h.alloc_mb) },
      { name: "Advice", cls: "src", cell: (r) => el("div", {}, el("div", {}, r.h.message),
        el("pre", { class: "example" }, r.h.example),
        r.h.estimated_saving ? el("div", { class: "muted" }, "Estimate: " + r.h.estimated_saving) : "") },
    ];
    const render = (r) => el("tr", {}, cols.map((c) => el("td", { class: c.cls || null }, c.cell(r))));
    s.appendChild(el("div", { class: "scroll" },
      sortedTable(cols, () => ({ list: rows.slice(), sortable: true, render }), { key: 2, dir: -1 }, "advice-table")));
    return s;
  }
  function warningsSection() {
    const s = el("section", { id: "warnings" }, el("h2", {}, "Warnings"));
    if (!D.run.problems.length) s.appendChild(el("p", { class: "muted" }, "None."));
    else s.appendChild(el("ul", { class: "problems" }, D.run.problems.map((w) => el("li", {}, w))));
    return s;
  }

  // ------------------------------------------------------------------ the page
  window.rprof = { data: D };
  document.title = "rprof: " + D.run.command;
  const nav = el("nav", {}, [["#lines", "Lines"], ["#functions", "Functions"], ["#flame-graph", "Flame graph"],
    ["#memory", "Memory"], ["#advice", "Advice (" + D.advice.length + ")"], ["#threads", "Threads"],
    ...(D.processes.length ? [["#processes", "Processes (" + D.processes.length + ")"]] : []),
    ["#warnings", "Warnings (" + D.run.problems.length + ")"]]
    .map(([href, text]) => el("a", { href }, text)));
  const main = el("main", {});
  document.body.append(el("header", {}, el("h1", {}, "rprof report", el("span", { class: "cmd" }, D.run.command)), runInfo()),
    nav, main);
  // ------------------------------------------------------------------ gpu
  // Only with GPU readings: the devices, and utilisation (summed over devices) over time.
  function gpuSection() {
    const g = D.gpu;
    const s = el("section", { id: "gpu" }, el("h2", {}, "GPU"));
    const dl = el("dl", { class: "run" });
    const item = (k, v) => dl.append(el("dt", {}, k), el("dd", {}, v));
    g.devices.forEach((d) => item(d.name, d.avg_util + "% busy on average, up to " + mib(d.peak_memory_mib) +
      " of " + mib(d.memory_total_mib) + " MiB"));
    item("Figures", "utilisation " + g.util_source + ", memory " + g.memory_source + "; " + g.unattributed_pct +
      "% of the GPU time near no sample (charged to no line)");
    const W = 900, H = 160, L = 50, B = 20;
    const c = svg("svg", { class: "chart", viewBox: "0 0 " + W + " " + H, id: "gpu-timeline" });
    const max = Math.max(100, ...g.timeline.map((p) => p[1]));
    const x = (t) => L + t * (W - L - 10), y = (v) => H - B - (v / max) * (H - B - 10);
    c.appendChild(svg("line", { class: "axis", x1: L, y1: H - B, x2: W - 10, y2: H - B }));
    c.appendChild(svg("line", { class: "axis", x1: L, y1: 10, x2: L, y2: H - B }));
    const t = svg("text", { x: L - 4, y: y(max) + 4, "text-anchor": "end" });
    t.textContent = max + "%";
    c.appendChild(t);
    c.appendChild(svg("polyline", { class: "line", points: g.timeline.map((p) => x(p[0]) + "," + y(p[1])).join(" ") }));
    s.append(dl, el("h2", {}, "GPU utilisation over time"), c);
    return s;
  }

  // ------------------------------------------------------------------ marks
  // Only with marks the program made (rprof_mark): where each falls in the run.
  function marksSection() {
    const s = el("section", { id: "marks" }, el("h2", {}, "Marks"));
    const W = 900, H = 40 + 16 * D.marks.length, L = 50;
    const c = svg("svg", { class: "chart", viewBox: "0 0 " + W + " " + H, id: "marks-timeline" });
    const x = (t) => L + t * (W - L - 10);
    c.appendChild(svg("line", { class: "axis", x1: L, y1: 20, x2: W - 10, y2: 20 }));
    D.marks.forEach((m, i) => {
      c.appendChild(svg("line", { class: "mark", x1: x(m.t), y1: 12, x2: x(m.t), y2: 28 + 16 * i, stroke: "currentColor" }));
      const t = svg("text", { x: Math.min(x(m.t) + 4, W - 200), y: 40 + 16 * i });
      t.textContent = m.label + " (" + secs(m.t_s) + ")";
      c.appendChild(t);
    });
    s.appendChild(c);
    return s;
  }

  main.append(linesSection(), functionsSection(), flameSection(), memorySection(), adviceSection(), threadsSection());
  if (D.processes.length) main.append(processesSection());
  main.append(warningsSection());
  if (D.marks.length) main.insertBefore(marksSection(), main.lastChild);
  if (D.gpu) main.insertBefore(gpuSection(), main.children[1]);
  window.rprof.flame.redraw();
})();
