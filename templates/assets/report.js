/* fleet-ecs report.html: the host table and the per-host drill-down.
 * Inlined at render time and allowed by its hash in the page's CSP. Every value in the data
 * island came from an endpoint: it reaches the page through textContent and setAttribute only,
 * never as markup, and only run-directory-relative links are made. */
(function () {
  "use strict";

  var island = document.getElementById("fleet-data");
  var hosts = JSON.parse(island.textContent);
  var STATUS_RANK = { fail: 0, warn: 1, ok: 2 };
  var SAFE_REL = /^(?!\/)(?!.*(?:^|\/)\.\.?(?:\/|$))[A-Za-z0-9._~%\/-]+$/;
  var state = { q: "", status: "", cat: "", group: "", key: "status", dir: 1,
                page: 0, size: 100, view: [] };
  var search = null;

  function $(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function bdi(text) { return el("bdi", null, text); }

  function badge(status) { return el("span", "badge " + status, status); }

  function haystack(h) {
    var parts = [h.h, h.a, h.g.join(" "), h.c, h.hint, h.err, h.url, h.px, h.st,
                 h.ev.join("\n")];
    h.fi.forEach(function (f) { parts.push(f.join(" ")); });
    return parts.join("\n").toLowerCase();
  }

  var sortKeys = {
    host: function (h) { return h.h.toLowerCase(); },
    status: function (h) { return STATUS_RANK[h.s]; },
    category: function (h) { return h.cr; },
    group: function (h) { return (h.g[0] || "").toLowerCase(); },
    hint: function (h) { return h.hint.toLowerCase(); },
    url: function (h) { return h.url.toLowerCase(); },
    http: function (h) { return h.http === null ? -1 : h.http; },
    duration: function (h) { return h.d; }
  };

  function compute() {
    var q = state.q.trim().toLowerCase();
    if (q && search === null) { search = hosts.map(haystack); }
    var keyOf = sortKeys[state.key] || sortKeys.status;
    var rows = [];
    for (var n = 0; n < hosts.length; n++) {
      var h = hosts[n];
      if (state.status && h.s !== state.status) { continue; }
      if (state.cat && h.c !== state.cat) { continue; }
      if (state.group && h.g.indexOf(state.group) < 0) { continue; }
      if (q && search[n].indexOf(q) < 0) { continue; }
      rows.push([keyOf(h), h.i, h]);
    }
    var dir = state.dir;
    rows.sort(function (a, b) {
      if (a[0] < b[0]) { return -dir; }
      if (a[0] > b[0]) { return dir; }
      return a[1] - b[1];  // the server's order (failures first, by name) breaks ties
    });
    state.view = rows.map(function (r) { return r[2]; });
    var pages = Math.max(1, Math.ceil(state.view.length / state.size));
    if (state.page >= pages) { state.page = pages - 1; }
  }

  function cell(tr, content, cls, title) {
    var td = el("td", cls);
    if (content instanceof Node) { td.appendChild(content); } else { td.textContent = content; }
    if (title) { td.title = title; }
    tr.appendChild(td);
  }

  function render() {
    var body = $("rows");
    var start = state.page * state.size;
    var slice = state.view.slice(start, start + state.size);
    var frag = document.createDocumentFragment();
    slice.forEach(function (h) {
      var tr = el("tr", h.s);
      tr.setAttribute("data-i", String(h.i));
      tr.tabIndex = 0;
      cell(tr, bdi(h.h), "host", h.h + " (" + h.a + ")");
      cell(tr, badge(h.s));
      cell(tr, h.c, "cat");
      cell(tr, h.g.join("; "), null, h.g.join("; "));
      cell(tr, h.hint, "hint", h.hint.slice(0, 500));
      cell(tr, h.url, "url", h.url.slice(0, 500));
      cell(tr, h.http === null ? "" : String(h.http), "num");
      cell(tr, h.d.toFixed(1), "num");
      frag.appendChild(tr);
    });
    body.textContent = "";
    body.appendChild(frag);
    var total = state.view.length;
    var pages = Math.max(1, Math.ceil(total / state.size));
    $("count").textContent = total === hosts.length
      ? total + " hosts"
      : total + " of " + hosts.length + " hosts match";
    $("page").textContent = total
      ? "Rows " + (start + 1) + "\u2013" + Math.min(start + state.size, total) + " of " + total +
        " (page " + (state.page + 1) + " of " + pages + ")"
      : "No host matches.";
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
  }

  function update() { compute(); render(); }

  function field(dl, label, value) {
    if (value === null || value === undefined || value === "") { return; }
    dl.appendChild(el("dt", null, label));
    var dd = el("dd");
    if (value instanceof Node) { dd.appendChild(value); } else { dd.textContent = value; }
    dl.appendChild(dd);
  }

  function list(items, cls) {
    var ul = el("ul", cls);
    items.forEach(function (item) {
      var li = el("li");
      li.dir = "auto";
      if (item instanceof Node) { li.appendChild(item); } else { li.textContent = item; }
      ul.appendChild(li);
    });
    return ul;
  }

  function link(rel, label) {
    if (typeof rel !== "string" || !SAFE_REL.test(rel)) { return null; }
    var a = el("a", null, label);
    a.setAttribute("href", rel);
    return a;
  }

  function section(panel, title) { panel.appendChild(el("h3", null, title)); }

  function openDetail(i) {
    var h = hosts[i];
    if (!h) { return; }
    var panel = $("detail");
    panel.textContent = "";
    var close = el("button", "close", "Close \u2715");
    close.type = "button";
    close.addEventListener("click", closeDetail);
    panel.appendChild(close);
    var title = el("h2");
    title.appendChild(bdi(h.h));
    panel.appendChild(title);
    var line = el("p");
    line.appendChild(badge(h.s));
    line.appendChild(document.createTextNode(" "));
    line.appendChild(el("code", null, h.c));
    panel.appendChild(line);

    var dl = el("dl");
    field(dl, "Address", h.a + " (" + h.t + (h.au ? ", " + h.au : "") + ")");
    field(dl, "Groups", h.g.join("; "));
    field(dl, "Stopped at step", h.st);
    field(dl, "Started", h.t0);
    field(dl, "Finished", h.t1);
    field(dl, "Scan time", h.d.toFixed(2) + " s");
    field(dl, "ECS URL", h.url);
    field(dl, "Other ECS URLs", h.urls.filter(function (u) { return u !== h.url; }).join("\n"));
    field(dl, "HTTP status", h.http === null ? "" : String(h.http));
    field(dl, "Proxy", h.px);
    panel.appendChild(dl);

    section(panel, "Hint");
    panel.appendChild(el("div", "hint", h.hint));
    if (h.err) { section(panel, "Error"); panel.appendChild(el("div", "v", h.err)); }
    section(panel, "Evidence");
    panel.appendChild(h.ev.length ? list(h.ev, "evidence") : el("p", "small", "(none)"));
    if (h.fi.length) {
      section(panel, "Findings");
      panel.appendChild(list(h.fi.map(function (f) {
        var span = el("span");
        span.appendChild(badge(f[0]));
        span.appendChild(document.createTextNode(" "));
        span.appendChild(el("code", null, f[1]));
        span.appendChild(document.createTextNode(": " + f[2]));
        return span;
      }), "findings"));
    }
    section(panel, "Timings");
    if (h.tm.length) {
      var table = el("table", "timings");
      h.tm.forEach(function (t) {
        var tr = el("tr");
        tr.appendChild(el("th", null, t[0]));
        tr.appendChild(el("td", "num", Math.round(t[1]) + " ms"));
        table.appendChild(tr);
      });
      panel.appendChild(table);
    } else {
      panel.appendChild(el("p", "small", "(no timings: the probe did not run or kept none)"));
    }
    section(panel, "Network paths");
    if (h.np.length) {
      h.np.forEach(function (p) {
        panel.appendChild(el("h4", null, p.name));
        var pdl = el("dl", "path");
        var outcome = !p.known ? "no result"
          : p.answered ? "HTTP " + p.status + (p.kind ? " (" + p.kind + ")" : "")
          : "failed" + (p.kind ? " (" + p.kind + ")" : "");
        field(pdl, "Result", outcome);
        field(pdl, "Via", p.via);
        panel.appendChild(pdl);
        if (p.evidence.length) { panel.appendChild(list(p.evidence, "path-evidence")); }
      });
    } else {
      panel.appendChild(el("p", "small", "(not probed)"));
    }
    section(panel, "Files");
    var files = el("p", "files");
    [[h.rep, "report.txt"], [h.cap, "capture.etl"]].forEach(function (f) {
      var a = link(f[0], f[1]);
      if (a) { files.appendChild(a); files.appendChild(document.createTextNode(" ")); }
    });
    if (!files.childNodes.length) { files.textContent = "(none)"; }
    panel.appendChild(files);

    var rows = $("rows").querySelectorAll("tr.sel");
    for (var n = 0; n < rows.length; n++) { rows[n].classList.remove("sel"); }
    var row = $("rows").querySelector('tr[data-i="' + h.i + '"]');
    if (row) { row.classList.add("sel"); }
    panel.hidden = false;
    panel.scrollTop = 0;
    panel.focus();
  }

  function closeDetail() { $("detail").hidden = true; }

  function fromHash() {
    var m = /^#host-(\d+)$/.exec(window.location.hash);
    if (m) { openDetail(Number(m[1])); }
  }

  var timer = null;
  $("q").addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      state.q = $("q").value; state.page = 0; update();
    }, 120);
  });
  [["f-status", "status"], ["f-cat", "cat"], ["f-group", "group"]].forEach(function (pair) {
    $(pair[0]).addEventListener("change", function () {
      state[pair[1]] = $(pair[0]).value; state.page = 0; update();
    });
  });
  $("reset").addEventListener("click", function () {
    ["q", "f-status", "f-cat", "f-group"].forEach(function (id) { $(id).value = ""; });
    state.q = state.status = state.cat = state.group = "";
    state.key = "status"; state.dir = 1; state.page = 0;
    markSort();
    update();
  });
  $("page-size").addEventListener("change", function () {
    state.size = Number($("page-size").value) || 100; state.page = 0; update();
  });
  $("prev").addEventListener("click", function () { state.page -= 1; render(); });
  $("next").addEventListener("click", function () { state.page += 1; render(); });

  function markSort() {
    var ths = document.querySelectorAll("#hosts-table th[data-key]");
    for (var n = 0; n < ths.length; n++) {
      var th = ths[n];
      if (th.getAttribute("data-key") === state.key) {
        th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
      } else {
        th.removeAttribute("aria-sort");
      }
    }
  }
  document.querySelector("#hosts-table thead").addEventListener("click", function (ev) {
    var th = ev.target.closest("th[data-key]");
    if (!th) { return; }
    var key = th.getAttribute("data-key");
    state.dir = state.key === key ? -state.dir : 1;
    state.key = key;
    state.page = 0;
    markSort();
    update();
  });
  $("rows").addEventListener("click", function (ev) {
    var tr = ev.target.closest("tr[data-i]");
    if (tr) { openDetail(Number(tr.getAttribute("data-i"))); }
  });
  $("rows").addEventListener("keydown", function (ev) {
    var tr = ev.target.closest("tr[data-i]");
    if (tr && (ev.key === "Enter" || ev.key === " ")) {
      ev.preventDefault();
      openDetail(Number(tr.getAttribute("data-i")));
    }
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") { closeDetail(); }
  });
  window.addEventListener("hashchange", fromHash);

  update();
  fromHash();
  document.documentElement.setAttribute("data-ready", "1");
}());
