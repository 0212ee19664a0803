/* The prompt explorer of report.html (explorer.html.j2): reads the JSON in #xp-data (its shape: the docstring of
   reportgen/report/explorer.py), filters the prompts and shows one page of them. Prompts, references and answers
   are untrusted text: they reach the page through textContent only, never as markup. */
(function () {
  "use strict";
  var PAGE = 10; // prompts per page
  var MAX_DIFF_CELLS = 4e6; // word pairs the diff compares at most (beyond: the differing middle is marked whole)
  var FINISH = { eos: "ended by itself", stop: "ended at a stop string", length: "stopped at the token limit", error: "failed" };

  if (window.performance && performance.mark) performance.mark("explorer-start");
  function $(id) { return document.getElementById(id); }
  var root = $("prompt-explorer");
  if (!root) return;
  var D = JSON.parse($("xp-data").textContent);
  var N = D.ids.length, M = D.models.length;
  var ERROR = D.fins.indexOf("error"), LENGTH = D.fins.indexOf("length");
  var form = $("xp-form"), search = $("xp-search"), cat = $("xp-cat"), diff = $("xp-diff");
  var status = $("xp-status"), list = $("xp-list"), prev = $("xp-prev"), next = $("xp-next");

  // Per prompt and model, computed once: right (1) / wrong (0) / unknown (-1), failed, loops.
  var right = [], looping = [];
  var failed = new Uint8Array(N), loops = new Uint8Array(N), disagree = new Uint8Array(N);
  for (var m = 0; m < M; m++) {
    var a = D.answers[m], r = new Int8Array(N).fill(-1), l = new Uint8Array(N);
    for (var i = 0; i < N; i++) {
      var isError = ERROR >= 0 && a.f[i] === ERROR;
      if (isError) failed[i] = 1;
      if (D.correct >= 0) {
        var v = a.m[D.correct][i];
        if (v !== null) r[i] = v >= 1 ? 1 : 0;
        else if (isError && D.refs[i].length) r[i] = 0; // a failed answer to a prompt with a reference is wrong
      }
    }
    for (var k = 0; k < a.loop.length; k++) { l[a.loop[k]] = 1; loops[a.loop[k]] = 1; }
    right.push(r);
    looping.push(l);
  }
  for (i = 0; i < N; i++) {
    if (D.correct >= 0) {
      var seen = 0;
      for (m = 0; m < M; m++) if (right[m][i] >= 0) seen |= right[m][i] ? 2 : 1;
      disagree[i] = seen === 3 ? 1 : 0;
    } else { // no 0/1 metric: the answers differ (spacing aside)
      var first = null;
      for (m = 0; m < M; m++) {
        var t = D.answers[m].t[i];
        if (t === null) continue;
        t = t.split(/\s+/).join(" ").trim();
        if (first === null) first = t;
        else if (t !== first) { disagree[i] = 1; break; }
      }
    }
  }

  var hay = null; // lower-cased text per prompt, built at the first search
  function haystack() {
    if (hay) return hay;
    hay = new Array(N);
    for (var i = 0; i < N; i++) {
      var parts = [D.ids[i], D.text[i]].concat(D.refs[i]);
      for (var m = 0; m < M; m++) if (D.answers[m].t[i] !== null) parts.push(D.answers[m].t[i]);
      hay[i] = parts.join("\n").toLowerCase();
    }
    return hay;
  }

  var shown = [], page = 0;

  function checked(id) { var box = $(id); return !!(box && box.checked); }

  function apply() {
    var terms = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    var c = cat.value === "" ? -1 : +cat.value;
    var onlyDisagree = checked("xp-disagree"), onlyFailed = checked("xp-failed"), onlyLoops = checked("xp-loops");
    var ab = checked("xp-ab"), ra = ab ? right[+$("xp-a").value] : null, rb = ab ? right[+$("xp-b").value] : null;
    var text = terms.length ? haystack() : null;
    shown = [];
    outer: for (var i = 0; i < N; i++) {
      if (c >= 0 && D.cat[i] !== c) continue;
      if (onlyDisagree && !disagree[i]) continue;
      if (ab && !(ra[i] === 1 && rb[i] === 0)) continue;
      if (onlyFailed && !failed[i]) continue;
      if (onlyLoops && !loops[i]) continue;
      for (var k = 0; k < terms.length; k++) if (text[i].indexOf(terms[k]) < 0) continue outer;
      shown.push(i);
    }
    page = 0;
    render();
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function number(v) { return Math.abs(v) >= 100 ? String(Math.round(v)) : String(+v.toPrecision(3)); }

  // Words and runs of punctuation, each with the spaces after it ("Tokyo," is "Tokyo" and ", ").
  function words(s) { return s.match(/(?:[\p{L}\p{N}_']+|[^\p{L}\p{N}_'\s]+)\s*/gu) || []; }

  // The words of `text` against those of `base`: the longest common subsequence of words (spacing aside; text
  // before the first word is kept as it is);
  // words only in `text` are <ins>, words only in `base` are <del>.
  function diffInto(pre, base, text) {
    var A = words(base), B = words(text);
    var a = A.map(function (w) { return w.trim(); }), b = B.map(function (w) { return w.trim(); });
    var p = 0, s = 0;
    while (p < a.length && p < b.length && a[p] === b[p]) p++;
    while (s < a.length - p && s < b.length - p && a[a.length - 1 - s] === b[b.length - 1 - s]) s++;
    var n = a.length - p - s, w = b.length - p - s, ops = [[0, /^\s*/.exec(text)[0]]], x, y;
    for (x = 0; x < p; x++) ops.push([0, B[x]]);
    if (n * w > MAX_DIFF_CELLS) {
      for (x = 0; x < n; x++) ops.push([-1, A[p + x]]);
      for (y = 0; y < w; y++) ops.push([1, B[p + y]]);
    } else {
      var L = new Uint32Array((n + 1) * (w + 1)), W = w + 1;
      for (x = n - 1; x >= 0; x--)
        for (y = w - 1; y >= 0; y--)
          L[x * W + y] = a[p + x] === b[p + y] ? L[(x + 1) * W + y + 1] + 1 : Math.max(L[(x + 1) * W + y], L[x * W + y + 1]);
      x = 0; y = 0;
      while (x < n && y < w) {
        if (a[p + x] === b[p + y]) { ops.push([0, B[p + y]]); x++; y++; }
        else if (L[(x + 1) * W + y] >= L[x * W + y + 1]) { ops.push([-1, A[p + x]]); x++; }
        else { ops.push([1, B[p + y]]); y++; }
      }
      for (; x < n; x++) ops.push([-1, A[p + x]]);
      for (; y < w; y++) ops.push([1, B[p + y]]);
    }
    for (y = b.length - s; y < b.length; y++) ops.push([0, B[y]]);
    var run = "", kind = 0;
    function flush() {
      if (!run) return;
      pre.appendChild(kind === 0 ? document.createTextNode(run) : el(kind > 0 ? "ins" : "del", null, run));
      run = "";
    }
    for (var k = 0; k < ops.length; k++) {
      if (ops[k][0] !== kind) { flush(); kind = ops[k][0]; }
      run += ops[k][1];
    }
    flush();
  }

  function judgeLines(i, m) {
    var out = [];
    for (var j = 0; j < D.judges.length; j++) {
      var J = D.judges[j], v = J.v[m][i];
      if (v === null || v === undefined) continue;
      if (J.mode === "pairwise") {
        var other = D.models[J.baseline];
        var said = v === 1 ? "preferred to " + other : v === 0 ? other + " preferred" : v === 0.5 ? "tie with " + other : number(v) + " against " + other + " (1: preferred)";
        out.push("Judge " + J.name + ": " + said);
      } else out.push("Judge " + J.name + ": score " + number(v));
    }
    return out;
  }

  function answer(i, m, base) {
    var a = D.answers[m], box = el("section", "xp-answer");
    box.appendChild(el("h4", null, D.models[m]));
    if (a.t[i] === null) { box.appendChild(el("p", null, "No answer stored for this prompt.")); return box; }
    var fin = D.fins[a.f[i]], line = [FINISH[fin] || fin];
    if (a.n[i] !== null && fin !== "error") line.push(a.n[i] + (a.n[i] === 1 ? " token" : " tokens"));
    if (looping[m][i]) line.push("loops");
    if (fin === "error" || fin === "length" || looping[m][i]) box.className += " flagged";
    box.appendChild(el("p", "xp-line", line.join(" · ")));
    var scores = [];
    for (var k = 0; k < D.metrics.length; k++) {
      var v = a.m[k][i];
      if (v === null) continue;
      scores.push(D.metrics[k][1] + (D.metrics[k][2] ? (v >= 1 ? " ✓" : " ✗") : " " + number(v)));
    }
    if (scores.length) box.appendChild(el("p", "xp-scores", scores.join(" · ")));
    var judged = judgeLines(i, m);
    if (judged.length) box.appendChild(el("p", "xp-judged", judged.join(" · ")));
    var pre = el("pre", "xp-text"), other = base >= 0 ? D.answers[base] : null;
    if (fin === "error") pre.textContent = "The generation failed: " + a.t[i];
    else if (other && base !== m && other.t[i] !== null && D.fins[other.f[i]] !== "error") diffInto(pre, other.t[i], a.t[i]);
    else pre.textContent = a.t[i] === "" ? "(empty output)" : a.t[i];
    box.appendChild(pre);
    return box;
  }

  function card(i, base) {
    var art = el("article", "xp-prompt");
    var h = el("h3", null, "Prompt " + (i + 1) + ": " + D.ids[i] + (D.cat[i] >= 0 ? " (" + D.cats[D.cat[i]] + ")" : ""));
    h.id = "xp-prompt-" + i;
    h.tabIndex = -1;
    art.setAttribute("aria-labelledby", h.id);
    art.appendChild(h);
    if (D.text[i]) art.appendChild(el("pre", "xp-ask", D.text[i]));
    if (D.refs[i].length) art.appendChild(el("p", "xp-meta", (D.refs[i].length > 1 ? "References: " : "Reference: ") + D.refs[i].join(" · ")));
    var grid = el("div", "xp-answers");
    for (var m = 0; m < M; m++) grid.appendChild(answer(i, m, base));
    art.appendChild(grid);
    return art;
  }

  function render() {
    var base = diff.value === "" ? -1 : +diff.value;
    var start = page * PAGE, end = Math.min(shown.length, start + PAGE);
    var frag = document.createDocumentFragment();
    if (base >= 0 && end > start)
      frag.appendChild(el("p", "xp-meta", "Marked against " + D.models[base] + "'s answer: underlined words are not in it, struck-through words are only in it."));
    for (var j = start; j < end; j++) frag.appendChild(card(shown[j], base));
    list.textContent = "";
    list.appendChild(frag);
    status.textContent = shown.length === 0
      ? "No prompt matches (" + N + " in all)."
      : "Prompts " + (start + 1) + "–" + end + " of " + shown.length + " shown" + (shown.length < N ? " (" + N + " in all)." : ".");
    prev.disabled = page === 0;
    next.disabled = end >= shown.length;
  }

  function turn(by) {
    page += by;
    render();
    var h = list.querySelector("h3");
    if (h) h.focus();
  }

  form.addEventListener("submit", function (e) { e.preventDefault(); });
  search.addEventListener("input", apply); // each key: filtering all prompts takes milliseconds
  form.addEventListener("change", function (e) { if (e.target === diff) render(); else if (e.target !== search) apply(); });
  prev.addEventListener("click", function () { turn(-1); });
  next.addEventListener("click", function () { turn(1); });
  apply();
  if (window.performance && performance.mark) performance.mark("explorer-ready");
})();
