// peercache dashboard: polls /v1/cluster and /v1/ring and redraws.
// No framework, no build step; served embedded by every node.
(function () {
  "use strict";

  const REFRESH_MS = 1500;
  const SEGMENTS = 360;
  const PALETTE = ["#4c6ef5", "#f08c00", "#12b886", "#e64980", "#7950f2",
    "#15aabf", "#fab005", "#82c91e", "#fa5252", "#868e96"];
  const SVGNS = "http://www.w3.org/2000/svg";

  const rateHistory = [];
  let lastOk = 0;
  let ringKey = "";

  const $ = (id) => document.getElementById(id);

  // el builds an element: el("td", {class: "num"}, "text", child...).
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "style") Object.assign(e.style, v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const k of kids) {
      if (k === undefined || k === null) continue;
      e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }

  function fmtInt(n) {
    if (n === undefined || n === null) return "—";
    if (n >= 1e9) return (n / 1e9).toFixed(1) + "G";
    if (n >= 1e6) return (n / 1e6).toFixed(n >= 1e7 ? 0 : 1) + "M";
    if (n >= 1e4) return (n / 1e3).toFixed(n >= 1e5 ? 0 : 1) + "k";
    return Math.round(n).toLocaleString("en-US");
  }

  function fmtBytes(b) {
    if (b === undefined || b === null) return "—";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i === 0 ? b.toFixed(0) : b.toFixed(b >= 100 ? 0 : 1)) + " " + u[i];
  }

  function fmtRate(r) {
    if (r === undefined || r === null) return "—";
    if (r >= 1000) return fmtInt(r);
    return r >= 10 ? r.toFixed(0) : r.toFixed(1);
  }

  function fmtDur(s) {
    if (s === undefined || s === null) return "—";
    if (s < 60) return Math.floor(s) + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + Math.floor(s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }

  function fmtHit(h) {
    return (h === undefined || h === null) ? "—" : (h * 100).toFixed(1) + "%";
  }

  // colours: one per node name, by position among all names seen, so that
  // a node keeps its colour while the cluster is unchanged.
  function colourMap(names) {
    const m = {};
    [...new Set(names)].sort().forEach((n, i) => { m[n] = PALETTE[i % PALETTE.length]; });
    return m;
  }

  async function getJSON(url) {
    const ctl = new AbortController();
    const t = setTimeout(() => ctl.abort(), 4000);
    try {
      const r = await fetch(url, { cache: "no-store", signal: ctl.signal });
      if (!r.ok) throw new Error(url + " answered " + r.status);
      return await r.json();
    } finally {
      clearTimeout(t);
    }
  }

  // ---- ring ----

  function polar(r, a) { return [r * Math.sin(a), -r * Math.cos(a)]; }

  function arcPath(r0, r1, a0, a1) {
    const large = (a1 - a0) > Math.PI ? 1 : 0;
    const [x0, y0] = polar(r1, a0), [x1, y1] = polar(r1, a1);
    const [x2, y2] = polar(r0, a1), [x3, y3] = polar(r0, a0);
    const f = (v) => v.toFixed(2);
    return `M${f(x0)} ${f(y0)}A${r1} ${r1} 0 ${large} 1 ${f(x1)} ${f(y1)}` +
      `L${f(x2)} ${f(y2)}A${r0} ${r0} 0 ${large} 0 ${f(x3)} ${f(y3)}Z`;
  }

  function drawRing(ring, colours, cl) {
    const root = $("ring");
    const key = JSON.stringify([ring.version, ring.members, ring.owners, colours]);
    if (key !== ringKey) {
      ringKey = key;
      root.replaceChildren();
      const n = ring.owners.length;
      const step = 2 * Math.PI / n;
      // Outer ring: the owner of each of n evenly spaced positions, runs of
      // one owner merged into one arc.
      root.append(svg("circle", { cx: 0, cy: 0, r: 150, fill: "none", stroke: "#eef1f5", "stroke-width": 36 }));
      for (let i = 0; i < n;) {
        let j = i;
        while (j + 1 < n && ring.owners[j + 1] === ring.owners[i]) j++;
        const o = ring.owners[i];
        if (o >= 0) {
          const name = ring.members[o];
          const p = svg("path", {
            d: arcPath(132, 168, i * step, (j + 1) * step), class: "seg",
            fill: colours[name], stroke: colours[name], "data-owner": name,
          });
          const t = svg("title", {});
          t.textContent = `${name} · positions ${i}–${j} of ${n}`;
          p.append(t);
          root.append(p);
        }
        i = j + 1;
      }
      // Inner ring: each member's share of the hash space.
      let a = 0;
      const gap = ring.members.length > 1 ? 0.025 : 0;
      for (const name of ring.members) {
        const share = ring.shares[name] || 0;
        const a1 = a + share * 2 * Math.PI;
        if (share > 0) {
          const p = svg("path", {
            d: arcPath(104, 118, a + gap / 2, Math.max(a + gap / 2 + 0.001, a1 - gap / 2)),
            class: "share", fill: colours[name], opacity: 0.85,
          });
          const t = svg("title", {});
          t.textContent = `${name} owns ${(share * 100).toFixed(1)}% of the ring`;
          p.append(t);
          root.append(p);
        }
        a = a1;
      }
      const big = svg("text", { x: 0, y: 4, class: "center-big", id: "ring-members" });
      big.textContent = ring.members.length;
      const small1 = svg("text", { x: 0, y: 26, class: "center-small" });
      small1.textContent = ring.members.length === 1 ? "member in the ring" : "members in the ring";
      const small2 = svg("text", { x: 0, y: 43, class: "center-small" });
      small2.textContent = `version ${ring.version} · ${fmtInt(ring.partitions)} partitions`;
      root.append(big, small1, small2);
    }
    $("ring-hint").textContent = `${ring.segments} positions · rendezvous owners`;

    const legend = $("legend");
    legend.replaceChildren();
    const names = [...new Set([...ring.members, ...cl.members.map((m) => m.name)])].sort();
    for (const name of names) {
      const share = ring.shares[name];
      legend.append(el("li", {},
        el("span", { class: "swatch", style: { background: colours[name] } }),
        el("span", { class: "name" }, name, name === cl.self ? el("span", { class: "you", style: { marginLeft: "8px" } }, "this node") : null),
        share === undefined
          ? el("span", { class: "pct empty" }, "not in ring")
          : el("span", { class: "pct" }, (share * 100).toFixed(1) + "%")));
    }
  }

  // ---- members, bars, migrations ----

  function migrationText(m) {
    if (!m) return { pct: 0, text: "—", active: false };
    if (m.active) {
      const done = (m.moved || 0) + (m.stale || 0) + (m.dropped || 0);
      const planned = m.planned || 0;
      const pct = planned > 0 ? Math.min(100, 100 * done / planned) : 0;
      const rate = m.keys_per_sec ? ` · ${fmtRate(m.keys_per_sec)} keys/s` : "";
      const text = planned > 0
        ? `<b>${pct.toFixed(0)}%</b> ${m.reason} · ${fmtInt(done)}/${fmtInt(planned)} keys${rate}`
        : `<b>scanning</b> ${m.reason} · ${fmtInt(m.scanned || 0)} keys read`;
      return { pct, text, active: true };
    }
    if (m.last) {
      const l = m.last;
      const secs = (l.duration_ns || 0) / 1e9;
      const moved = (l.moved || 0) + (l.stale || 0);
      const took = secs < 10 ? secs.toFixed(2) : secs.toFixed(0);
      const text = moved > 0
        ? `idle · last ${l.reason} moved <b>${fmtInt(moved)}</b> keys in ${took}s`
        : `idle · last ${l.reason} had nothing to move`;
      return { pct: moved > 0 ? 100 : 0, text, active: false };
    }
    return { pct: 0, text: "idle · no migration yet", active: false };
  }

  function setHTMLSafe(node, html) {
    // html comes from migrationText: numbers, reasons and <b>; reasons are
    // escaped here.
    node.replaceChildren();
    const parts = html.split(/(<b>.*?<\/b>)/);
    for (const p of parts) {
      const m = p.match(/^<b>(.*)<\/b>$/);
      node.append(m ? el("b", {}, m[1]) : document.createTextNode(p));
    }
  }

  function render(cl, ring) {
    const names = [...ring.members, ...cl.members.map((m) => m.name)];
    const colours = colourMap(names);
    const byName = {};
    for (const nr of cl.nodes || []) byName[nr.name] = nr;

    // Header.
    const badge = $("mode-badge");
    const ro = cl.cluster_mode === "read-only";
    const roNodes = (cl.nodes || []).filter((n) => n.node_mode === "read-only").map((n) => n.name);
    badge.className = "badge " + (ro || roNodes.length ? "ro" : "rw");
    badge.textContent = ro ? "cluster read-only" : roNodes.length ? `read-only: ${roNodes.join(", ")}` : "read-write";
    $("subtitle").textContent = `cluster dashboard · served by ${cl.self}`;
    const auth = $("auth-badge");
    auth.className = "badge " + (cl.auth === "off" ? "ro" : "rw");
    auth.textContent = cl.auth === "off" ? "auth: off" : `auth: ${cl.auth}`;

    // KPIs.
    const active = cl.members.filter((m) => m.state === "active").length;
    $("kpi-members").textContent = cl.members.length;
    const others = cl.members.length - active;
    $("kpi-members-note").textContent = `${active} active` + (others ? ` · ${others} other` : "") + ` · ring v${cl.ring.version}`;
    let keys = 0, mem = 0, rate = 0;
    const hits = [];
    for (const nr of cl.nodes || []) {
      if (!nr.reachable) continue;
      keys += nr.keys || 0; mem += nr.memory_bytes || 0; rate += nr.request_rate || 0;
      if (nr.hit_ratio !== null && nr.hit_ratio !== undefined) hits.push(nr.hit_ratio);
    }
    $("kpi-keys").textContent = fmtInt(keys);
    $("kpi-memory").textContent = fmtBytes(mem);
    $("kpi-rate").textContent = fmtRate(rate);
    if (hits.length) {
      $("kpi-hit").textContent = fmtHit(hits.reduce((a, b) => a + b, 0) / hits.length);
      $("kpi-hit").classList.remove("muted");
      $("kpi-hit-note").textContent = "mean over nodes";
    }
    rateHistory.push(rate);
    while (rateHistory.length > 60) rateHistory.shift();
    drawSpark(rateHistory);

    drawRing(ring, colours, cl);

    // Members table.
    const tbody = $("members").querySelector("tbody");
    tbody.replaceChildren();
    for (const m of cl.members) {
      const nr = byName[m.name] || {};
      const up = nr.reachable !== false && nr.name !== undefined;
      let state = m.state || "unknown";
      if (!up) state = "unreachable";
      const mode = up ? (nr.mode || "—") : "—";
      const tr = el("tr", { class: up ? null : "down", "data-node": m.name, title: up ? null : (nr.error || "no answer") },
        el("td", {}, el("span", { class: "nodecell" },
          el("span", { class: "swatch", style: { background: colours[m.name] } }), m.name,
          m.name === cl.self ? el("span", { class: "you" }, "this node") : null)),
        el("td", { class: "addr" }, m.http_addr || "—"),
        el("td", {}, el("span", { class: "pill " + state }, state),
          (up ? nr.migration && nr.migration.active : m.migrating)
            ? el("span", { class: "pill migrating", style: { marginLeft: "6px" } }, "migrating") : null),
        el("td", {}, up ? el("span", { class: "pill " + (mode === "read-only" ? "ro" : "rw") }, mode) : "—"),
        el("td", { class: "num" }, up ? fmtInt(nr.keys) : "—"),
        el("td", { class: "num", title: up && nr.memory_max_bytes ? `memory budget ${fmtBytes(nr.memory_max_bytes)} (shard and local tier)` : null },
          up ? fmtBytes(nr.memory_bytes) : "—"),
        el("td", { class: "num" }, up ? fmtRate(nr.request_rate) : "—"),
        el("td", { class: "num" }, up ? fmtHit(nr.hit_ratio) : "—"),
        el("td", { class: "num evicted", title: up && nr.evictions ? `local tier: ${fmtInt(nr.evictions.local_tier)} copies evicted` : null },
          up && nr.evictions ? fmtInt(nr.evictions.store) : "—"),
        el("td", { class: "num" }, up ? fmtDur(nr.uptime_seconds) : "—"));
      tbody.append(tr);
    }
    const unreachable = (cl.nodes || []).filter((n) => !n.reachable).length;
    $("members-hint").textContent = unreachable ? `${unreachable} not answering` : "all answering";

    // Bars.
    const reach = cl.members.map((m) => byName[m.name]).filter((n) => n && n.reachable);
    drawBars($("bars-keys"), reach, (n) => n.keys || 0, fmtInt, colours);
    drawBars($("bars-memory"), reach, (n) => n.memory_bytes || 0, fmtBytes, colours);

    // Migrations.
    const mig = $("migrations");
    mig.replaceChildren();
    let running = 0;
    for (const m of cl.members) {
      const nr = byName[m.name];
      const t = migrationText(nr && nr.reachable ? nr.migration : null);
      if (t.active) running++;
      const fill = el("div", { class: "mig-fill" + (t.active ? "" : " idle"), style: { width: t.pct.toFixed(1) + "%" } });
      if (t.active) fill.style.background = colours[m.name];
      const text = el("div", { class: "mig-text" });
      setHTMLSafe(text, t.text);
      mig.append(el("div", { class: "mig", "data-node": m.name },
        el("div", { class: "bar-label" }, m.name),
        el("div", { class: "mig-track" }, fill), text));
    }
    $("mig-hint").textContent = running ? `${running} running` : (cl.handoff_active ? "handoff reads on" : "all settled");

    $("footer").textContent = `ring checksum ${cl.ring.checksum} · ${cl.ring.vnodes} vnodes per member · refreshes every ${REFRESH_MS / 1000}s`;
  }

  function drawBars(root, nodes, value, fmt, colours) {
    root.replaceChildren();
    const maxV = Math.max(1, ...nodes.map(value));
    for (const n of nodes) {
      const v = value(n);
      root.append(el("div", { class: "bar-row" },
        el("div", { class: "bar-label" }, n.name),
        el("div", { class: "bar-track" },
          el("div", { class: "bar-fill", style: { width: (100 * v / maxV).toFixed(1) + "%", background: colours[n.name] } })),
        el("div", { class: "bar-value" }, fmt(v))));
    }
    if (!nodes.length) root.append(el("div", { class: "hint" }, "no node answered"));
  }

  function drawSpark(hist) {
    const s = $("spark");
    s.replaceChildren();
    if (hist.length < 2) return;
    const maxV = Math.max(1, ...hist);
    const x = (i) => (120 * i / (hist.length - 1)).toFixed(1);
    const pts = hist.map((v, i) => `${x(i)},${(26 - 24 * v / maxV).toFixed(1)}`);
    const first = x(0), last = x(hist.length - 1);
    s.append(svg("polygon", { points: `${first},28 ${pts.join(" ")} ${last},28`, fill: "rgba(76,110,245,.12)" }));
    s.append(svg("polyline", { points: pts.join(" "), fill: "none", stroke: "#4c6ef5", "stroke-width": 1.6, "vector-effect": "non-scaling-stroke" }));
  }

  function setLive(ok, text) {
    const l = $("live");
    l.className = "live " + (ok ? "ok" : "bad");
    $("live-text").textContent = text;
  }

  async function tick() {
    try {
      const [cl, ring] = await Promise.all([getJSON("/v1/cluster"), getJSON("/v1/ring?segments=" + SEGMENTS)]);
      render(cl, ring);
      lastOk = Date.now();
      setLive(true, "live · " + new Date(lastOk).toLocaleTimeString());
      document.body.dataset.ready = "true";
    } catch (e) {
      const ago = lastOk ? ` · last update ${Math.round((Date.now() - lastOk) / 1000)}s ago` : "";
      setLive(false, "cannot reach the node" + ago);
    } finally {
      setTimeout(tick, REFRESH_MS);
    }
  }

  tick();
})();
