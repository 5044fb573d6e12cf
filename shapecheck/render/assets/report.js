/* shapecheck HTML report: pan and zoom, nested models opened in place, findings focused.
   The graph is drawn by shapecheck (SVG in the page); this script only moves it. */
(function () {
  "use strict";
  var started = performance.now();
  var PAD = 6, HEAD = 40;
  var data = JSON.parse(document.getElementById("sc-data").textContent);
  var scenes = data.scenes;
  var parentOf = {};
  Object.keys(scenes).forEach(function (sid) {
    var s = scenes[sid];
    Object.keys(s.nested).forEach(function (i) { parentOf[s.nested[i]] = [sid, +i]; });
  });
  var opened = {};  // scene id -> {node index: true}
  var current = {};  // scene id -> the geometry after the last relayout

  function el(id) { return document.getElementById(id); }

  function geometry(sid) {
    var g = current[sid];
    if (g) return g;
    var s = scenes[sid], top = [], y = s.top;
    for (var r = 0; r < s.rankHeight.length; r++) {
      top.push(y);
      y += s.rankHeight[r] + s.rankGap[r];
    }
    return {
      x: s.nodes.map(function (n) { return n[0]; }),
      w: s.nodes.map(function (n) { return n[2]; }),
      h: s.nodes.map(function (n) { return n[3]; }),
      top: top, rankHeight: s.rankHeight.slice(), width: s.width, height: s.height,
      shift: function () { return 0; }
    };
  }

  function pathData(pts) {
    var d = "M" + pts[0][0].toFixed(1) + "," + pts[0][1].toFixed(1);
    for (var i = 1; i < pts.length; i++) {
      var x0 = pts[i - 1][0], y0 = pts[i - 1][1], x1 = pts[i][0], y1 = pts[i][1];
      if (Math.abs(x1 - x0) < 0.5) {
        d += "L" + x1.toFixed(1) + "," + y1.toFixed(1);
      } else {
        var my = ((y0 + y1) / 2).toFixed(1);
        d += "C" + x0.toFixed(1) + "," + my + " " + x1.toFixed(1) + "," + my + " " +
          x1.toFixed(1) + "," + y1.toFixed(1);
      }
    }
    return d;
  }

  /* Lay a scene out again with its open nested models: each open box grows, and space
     is inserted around it (everything right of it moves right, every rank below it
     down), so nothing overlaps and the rest of the picture keeps its shape. */
  function relayout(sid, propagate) {
    var s = scenes[sid], open = opened[sid] || {}, n = s.nodes.length;
    var w = [], h = [], grow = [], rankHeight = s.rankHeight.slice();
    for (var i = 0; i < n; i++) {
      var node = s.nodes[i];
      w.push(node[2]);
      h.push(node[3]);
      if (open[i]) {
        var inner = geometry(s.nested[i]);
        w[i] = Math.max(node[2], inner.width + 2 * PAD);
        h[i] = Math.max(node[3], HEAD + inner.height + PAD);
        if (w[i] > node[2]) grow.push([node[0], w[i] - node[2]]);
        rankHeight[node[1]] = Math.max(rankHeight[node[1]], h[i]);
      }
    }
    var half = 0;
    grow.forEach(function (g) { half += g[1] / 2; });
    function shift(x0) {
      var d = half;
      for (var k = 0; k < grow.length; k++) {
        if (x0 > grow[k][0]) d += grow[k][1] / 2;
        else if (x0 < grow[k][0]) d -= grow[k][1] / 2;
      }
      return d;
    }
    var top = [], y = s.top, extra = 0;
    for (var r = 0; r < rankHeight.length; r++) {
      top.push(y);
      y += rankHeight[r] + s.rankGap[r];
      extra += rankHeight[r] - s.rankHeight[r];
    }
    var x = s.nodes.map(function (node) { return node[0] + shift(node[0]); });
    for (i = 0; i < n; i++) {
      var g = el(sid + "-n" + i);
      if (!g) continue;
      g.setAttribute("transform", "translate(" + (x[i] - w[i] / 2).toFixed(1) + "," +
        top[s.nodes[i][1]].toFixed(1) + ")");
      var box = g.querySelector(":scope > rect.box");
      box.setAttribute("width", w[i].toFixed(1));
      box.setAttribute("height", h[i].toFixed(1));
      g.querySelectorAll(":scope > text.name, :scope > text.cls").forEach(function (t) {
        t.setAttribute("x", (w[i] / 2).toFixed(1));
      });
      var badge = g.querySelector(":scope > g.badge");
      if (badge) {
        var bw = parseFloat(badge.getAttribute("data-bw"));
        badge.setAttribute("transform", "translate(" + (w[i] - bw + 6).toFixed(1) + ",-9)");
      }
    }
    s.edges.forEach(function (e, k) {
      var path = el(sid + "-e" + k);
      if (!path) return;
      var src = e[0], dst = e[1];
      var pts = [[x[src] + e[2], top[s.nodes[src][1]] + h[src]]];
      e[4].forEach(function (dm) {
        var dx = dm[0] + shift(dm[0]);
        pts.push([dx, top[dm[1]]]);
        pts.push([dx, top[dm[1]] + rankHeight[dm[1]]]);
      });
      pts.push([x[dst] + e[3], top[s.nodes[dst][1]]]);
      path.setAttribute("d", pathData(pts));
    });
    s.labels.forEach(function (lb, k) {
      var t = el(sid + "-l" + k);
      if (!t) return;
      var v = lb[0];
      t.setAttribute("x", (x[v] + lb[1] + 5).toFixed(1));
      t.setAttribute("y", (top[s.nodes[v][1]] + h[v] + 12 + 13 * lb[2]).toFixed(1));
    });
    current[sid] = {
      x: x, w: w, h: h, top: top, rankHeight: rankHeight, shift: shift,
      width: s.width + 2 * half, height: s.height + extra
    };
    if (propagate !== false && parentOf[sid]) relayout(parentOf[sid][0]);
  }

  function setOpen(sid, i, open) {
    var g = el(sid + "-n" + i);
    if (!g) return;
    opened[sid] = opened[sid] || {};
    if (open) opened[sid][i] = true; else delete opened[sid][i];
    var inner = g.querySelector(":scope > g.inner");
    if (inner) inner.setAttribute("display", open ? "inline" : "none");
    var toggle = g.querySelector(":scope > text.toggle");
    if (toggle) toggle.textContent = open ? "\u2212" : "+";
    g.classList.toggle("open", open);
  }

  function toggle(sid, i) {
    setOpen(sid, i, !(opened[sid] && opened[sid][i]));
    relayout(sid);
  }

  function within(sid) {  // the scene and the scenes nested in it, deepest first
    var out = [];
    Object.keys(scenes[sid].nested).forEach(function (i) {
      out = out.concat(within(scenes[sid].nested[i]));
    });
    out.push(sid);
    return out;
  }

  function setAll(sid, open) {
    within(sid).forEach(function (s) {
      Object.keys(scenes[s].nested).forEach(function (i) { setOpen(s, +i, open); });
      relayout(s, false);
    });
  }

  /* Tabs, pan and zoom */
  var tabs = data.tabs, active = -1, views = {};
  var buttons = document.querySelectorAll("nav.tabs button");
  var canvases = document.querySelectorAll("#stage .canvas");

  function svgOf(t) { return canvases[t].querySelector("svg"); }

  function apply(t) {
    var v = views[t], svg = svgOf(t);
    if (!svg) return;
    svg.querySelector("g.viewport").setAttribute("transform",
      "translate(" + v.x.toFixed(1) + "," + v.y.toFixed(1) + ") scale(" + v.k.toFixed(4) + ")");
    svg.classList.toggle("far", v.k < 0.45);
  }

  function fit(t) {
    var svg = svgOf(t);
    if (!svg) return;
    if (!tabs[t].scene) return;
    var g = geometry(tabs[t].scene), box = canvases[t].getBoundingClientRect();
    var vw = box.width || 800, vh = box.height || 600;
    var k = Math.min(vw / g.width, vh / g.height, 1.5);
    if (k < 0.3) {  // a large model: readable, from its top
      k = Math.min(0.8, vw / g.width < 0.3 ? 0.8 : vw / g.width);
      views[t] = { k: k, x: Math.max(8, (vw - g.width * k) / 2), y: 8, large: true };
    } else {
      views[t] = { k: k, x: (vw - g.width * k) / 2, y: Math.max(0, (vh - g.height * k) / 2) };
    }
    apply(t);
  }

  function zoom(t, factor, cx, cy) {
    if (!views[t]) return;
    var v = views[t], box = canvases[t].getBoundingClientRect();
    if (cx === undefined) { cx = box.width / 2; cy = box.height / 2; }
    var k = Math.max(0.02, Math.min(4, v.k * factor));
    v.x = cx - (cx - v.x) * k / v.k;
    v.y = cy - (cy - v.y) * k / v.k;
    v.k = k;
    apply(t);
  }

  function activate(t) {
    if (t === active || t < 0 || t >= tabs.length) return;
    active = t;
    for (var i = 0; i < canvases.length; i++) {
      canvases[i].hidden = i !== t;
      buttons[i].classList.toggle("active", i === t);
    }
    if (!views[t]) fit(t);
    document.body.setAttribute("data-tab", String(t));
  }

  Array.prototype.forEach.call(buttons, function (b, t) {
    b.addEventListener("click", function () { activate(t); });
  });

  Array.prototype.forEach.call(canvases, function (c, t) {
    var drag = null;
    c.addEventListener("wheel", function (ev) {
      if (!views[t]) return;
      ev.preventDefault();
      var box = c.getBoundingClientRect();
      zoom(t, Math.exp(-ev.deltaY * 0.0015), ev.clientX - box.left, ev.clientY - box.top);
    }, { passive: false });
    c.addEventListener("pointerdown", function (ev) {
      if (!views[t] || ev.button !== 0) return;
      drag = { x: ev.clientX, y: ev.clientY, vx: views[t].x, vy: views[t].y, moved: false };
    });
    c.addEventListener("pointermove", function (ev) {
      if (!drag) return;
      var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      if (!drag.moved && Math.abs(dx) + Math.abs(dy) > 4) {
        drag.moved = true;
        c.classList.add("dragging");
        try { c.setPointerCapture(ev.pointerId); } catch (err) { /* not captured */ }
      }
      if (drag.moved) {
        views[t].x = drag.vx + dx;
        views[t].y = drag.vy + dy;
        apply(t);
      }
    });
    function end(ev) {
      if (!drag) return;
      var moved = drag.moved;
      drag = null;
      c.classList.remove("dragging");
      if (!moved && ev.type === "pointerup") clicked(ev.target);
    }
    c.addEventListener("pointerup", end);
    c.addEventListener("pointercancel", end);
  });

  function clicked(target) {
    var node = target.closest ? target.closest(".node") : null;
    if (!node) return;
    var m = /^(s\d+)-n(\d+)$/.exec(node.id);
    if (!m) return;
    if (node.classList.contains("expandable")) {
      toggle(m[1], +m[2]);
      return;
    }
    for (var f = 0; f < data.findings.length; f++) {  // a marked layer: its finding
      var fd = data.findings[f];
      if (fd.tab === active && fd.nodes.indexOf(+m[2]) >= 0 && tabs[active].scene === m[1]) {
        select(f, true);
        return;
      }
    }
  }

  /* Findings */
  var items = document.querySelectorAll("li.finding");

  function select(f, scroll) {
    Array.prototype.forEach.call(items, function (li) {
      li.classList.toggle("active", +li.getAttribute("data-finding") === f);
    });
    var li = document.querySelector('li.finding[data-finding="' + f + '"]');
    if (li && scroll && li.scrollIntoView) li.scrollIntoView({ block: "nearest" });
  }

  function focusFinding(f) {
    var fd = data.findings[f];
    if (!fd) return;
    select(f, true);
    if (fd.tab < 0) return;
    activate(fd.tab);
    document.querySelectorAll(".node.focused").forEach(function (n) {
      n.classList.remove("focused");
    });
    var sid = tabs[fd.tab].scene;
    if (!sid || !views[fd.tab]) return;
    var g = geometry(sid), s = scenes[sid];
    if (!fd.nodes.length) { fit(fd.tab); return; }
    var x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    fd.nodes.forEach(function (i) {
      var n = el(sid + "-n" + i);
      if (n) n.classList.add("focused");
      var top = g.top[s.nodes[i][1]];
      x0 = Math.min(x0, g.x[i] - g.w[i] / 2);
      x1 = Math.max(x1, g.x[i] + g.w[i] / 2);
      y0 = Math.min(y0, top);
      y1 = Math.max(y1, top + g.h[i]);
    });
    var box = canvases[fd.tab].getBoundingClientRect();
    var vw = box.width || 800, vh = box.height || 600, v = views[fd.tab];
    var k = Math.min(Math.max(v.k, 1), vw / (x1 - x0 + 80), vh / (y1 - y0 + 80));
    v.k = k;
    v.x = vw / 2 - (x0 + x1) / 2 * k;
    v.y = vh / 2 - (y0 + y1) / 2 * k;
    apply(fd.tab);
    document.body.setAttribute("data-focus", fd.layer || "");
  }

  Array.prototype.forEach.call(items, function (li) {
    li.addEventListener("click", function () {
      focusFinding(+li.getAttribute("data-finding"));
    });
  });

  document.querySelectorAll(".toolbar button").forEach(function (b) {
    b.addEventListener("click", function () {
      var act = b.getAttribute("data-act");
      if (active < 0) return;
      if (act === "fit") fit(active);
      else if (act === "in") zoom(active, 1.25);
      else if (act === "out") zoom(active, 0.8);
      else if ((act === "open" || act === "close") && tabs[active].scene) {
        setAll(tabs[active].scene, act === "open");
        fit(active);
      }
    });
  });

  document.addEventListener("keydown", function (ev) {
    if (active < 0 || ev.target.closest && ev.target.closest("input, textarea")) return;
    if (ev.key === "f") fit(active);
    else if (ev.key === "+" || ev.key === "=") zoom(active, 1.25);
    else if (ev.key === "-") zoom(active, 0.8);
  });

  window.addEventListener("resize", function () { if (active >= 0) fit(active); });

  /* Start: the tab the address asks for (#tab=N), else the model of the first error
     (else warning, else any finding), else the first; #open=1 opens its nested models,
     #focus=N focuses finding N (in a model too large to see whole, the first finding
     is focused). */
  function param(name) {
    var m = new RegExp("(?:^#|&)" + name + "=(\\d+)").exec(location.hash || "");
    return m ? +m[1] : null;
  }
  var shown = data.findings.filter(function (fd) { return fd.tab >= 0; });
  var first = ["error", "warning", "info"].map(function (sev) {
    return shown.filter(function (fd) { return fd.severity === sev; })[0];
  }).filter(Boolean)[0] || shown[0];
  var tab = param("tab"), focus = param("focus");
  activate(tab !== null ? tab : first ? first.tab : 0);
  if (param("open") === 1 && active >= 0 && tabs[active].scene) {
    setAll(tabs[active].scene, true);
    fit(active);
  }
  if (focus !== null) {
    focusFinding(focus);
  } else if (first && first.tab === active && first.nodes.length && views[active] &&
             views[active].large) {  // too large to see whole: start at the first finding
    focusFinding(data.findings.indexOf(first));
  }

  window.shapecheckReport = { focus: focusFinding, activate: activate, fit: fit,
    toggle: toggle };
  document.body.setAttribute("data-render-ms", (performance.now() - started).toFixed(1));
  document.body.setAttribute("data-nodes",
    String(document.querySelectorAll(".sc-graph .node").length));
  document.body.setAttribute("data-ready", "1");
})();
