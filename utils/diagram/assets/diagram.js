// Interactivity for the timing diagram. The SVG is complete without this
// script; it only zooms (by moving elements along the time axis, so text and
// markers keep their size), re-places labels so they do not overlap, redraws
// the ticks of the visible part, toggles classes of things to hide, and shows
// a tooltip faster than the browser's <title> one.
//
// Arrows and events come in <g class="slice"> groups with a time range. Only
// slices near the visible part are moved; the others are hidden and marked
// stale until scrolled to. That keeps a zoom step of a 20k-event run cheap.
(function () {
  'use strict';
  const tip = document.getElementById('tip');
  let active = null; // the diagram keyboard zoom applies to

  document.querySelectorAll('.diagram').forEach(setup);
  document.addEventListener('keydown', (e) => {
    if (!active || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target instanceof HTMLInputElement) return;
    if (e.key === '+' || e.key === '=') active.zoomBy(1.5);
    else if (e.key === '-' || e.key === '_') active.zoomBy(1 / 1.5);
    else if (e.key === '0') active.fit();
  });
  document.documentElement.setAttribute('data-js', 'ready');

  function niceStep(minUs) {
    for (let step = 1; step < 1e15; step *= 10) {
      for (const m of [1, 2, 5]) if (step * m >= minUs) return step * m;
    }
    return 1e15;
  }

  function fmtOffset(us) {
    const trim = (s) => s.replace(/\.?0+$/, '');
    if (us === 0) return '0';
    if (us >= 1e6) return trim((us / 1e6).toFixed(3)) + 's';
    if (us >= 1e3) return trim((us / 1e3).toFixed(3)) + 'ms';
    return us + 'µs';
  }

  function setup(root) {
    const chart = root.querySelector('svg.chart');
    const scroller = root.querySelector('.scroll');
    const section = root.closest('section') || root;
    const NS = chart.namespaceURI; // no namespace URL literal: the page names no address
    const pad = +root.dataset.pad;
    const dur = Math.max(+root.dataset.durationUs, 1);
    const lostLen = +root.dataset.lostLen;
    const charW = +root.dataset.charW;
    const gap = +root.dataset.labelGap;
    const height = +chart.getAttribute('height');
    const readout = section.querySelector('.zoom-readout');
    let scale = +root.dataset.scale;
    let fitted = true;
    // Reading the scroller's geometry after moving elements forces the
    // browser to lay out the whole SVG at once; so the width is cached and
    // the scroll position we are about to set is passed along instead.
    let viewWidth = scroller.clientWidth;

    const X = (t) => pad + t * scale;
    const num = (el, k) => +el.getAttribute('data-' + k);

    // Few, long elements: moved on every layout.
    const rects = Array.from(chart.querySelectorAll('rect[data-t0]'), (el) => [el, num(el, 't0'), num(el, 't1')]);
    const terms = Array.from(chart.querySelectorAll('text.term-label'), (el) => ({
      el, t0: num(el, 't0'), t1: num(el, 't1'), full: el.dataset.full, short: el.dataset.short,
    }));
    const simLines = Array.from(chart.querySelectorAll('line.sim-event'), (el) => [el, num(el, 't')]);
    const simLabels = Array.from(chart.querySelectorAll('text.sim-label'), label);
    const wide = chart.querySelectorAll('.lane-bg');
    const axisLine = chart.querySelector('.axis-line');
    const ticks = chart.querySelector('.ticks');

    // Many, short elements: in slices.
    const slices = Array.from(chart.querySelectorAll('g.slice'), (g) => ({
      g, t0: num(g, 't0'), t1: num(g, 't1'), stale: true, shown: true,
      arrows: Array.from(g.querySelectorAll(':scope > g.arrow'), (a) => ({
        g: a, lines: Array.from(a.querySelectorAll('line')), t0: num(a, 't0'), t1: num(a, 't1'),
        lost: a.classList.contains('lost'), orphan: a.classList.contains('orphan'), hidden: false,
      })),
      points: Array.from(g.querySelectorAll(':scope > g.ev'), (el) => [el, num(el, 't')]),
      labels: Array.from(g.querySelectorAll(':scope > text.label'), label),
    }));

    function label(el) {
      return { el, node: el.dataset.node, t: num(el, 't'), cy: num(el, 'cy'), w: Array.from(el.textContent).length * charW };
    }

    // Arrows hidden by a toggle are not moved; showing them again lays out.
    const hiddenBy = (g) => (g.classList.contains('heartbeat') && root.classList.contains('hide-hb')) ||
      (g.classList.contains('reply') && root.classList.contains('hide-replies'));

    const chartWidth = () => Math.ceil(X(dur) + pad);

    // layout moves what depends on the scale; sync then fills in the slices
    // around left, the scroll position the view will have.
    function layout(left) {
      const width = chartWidth();
      chart.setAttribute('width', width);
      wide.forEach((el) => el.setAttribute('width', width));
      if (axisLine) axisLine.setAttribute('x2', width);
      for (const [el, t0, t1] of rects) {
        el.setAttribute('x', X(t0));
        el.setAttribute('width', Math.max(X(t1) - X(t0), 0.5));
      }
      for (const s of terms) {
        const w = (s.t1 - s.t0) * scale;
        s.el.setAttribute('x', X(s.t0) + 4);
        if (w >= s.full.length * charW + 8) show(s.el, s.full);
        else if (w >= s.short.length * charW + 6) show(s.el, s.short);
        else s.el.setAttribute('visibility', 'hidden');
      }
      for (const [el, t] of simLines) {
        el.x1.baseVal.value = X(t);
        el.x2.baseVal.value = X(t);
      }
      placeLabels([simLabels], width);
      for (const s of slices) s.stale = true;
      sync(left);
    }

    function moveSlice(s) {
      for (const a of s.arrows) {
        if (a.hidden) continue;
        let x0 = X(a.t0);
        let x1 = X(a.t1);
        if (a.lost) x1 = x0 + lostLen;
        if (a.orphan) x0 = x1 - lostLen;
        for (const l of a.lines) {
          l.x1.baseVal.value = x0;
          l.x2.baseVal.value = x1;
        }
      }
      for (const [el, t] of s.points) el.setAttribute('transform', 'translate(' + X(t) + ',0)');
      s.stale = false;
    }

    // sync shows the slices within a screen's width of the view (moving
    // them first if the scale changed since) and hides the others.
    function sync(left) {
      const view = viewWidth || 1400;
      const from = (left - view - pad) / scale;
      const to = (left + 2 * view) / scale;
      const visible = [];
      let arrowsInView = 0;
      for (const s of slices) {
        const on = s.t1 >= from && s.t0 <= to;
        if (on) {
          if (s.stale) moveSlice(s);
          visible.push(s.labels);
          for (const a of s.arrows) if (!a.hidden) arrowsInView++;
        }
        if (on !== s.shown) {
          s.g.style.display = on ? '' : 'none';
          s.shown = on;
        }
      }
      // Past about one arrow per 3 px, arrowheads are noise: draw the arrows
      // thin and faint until the user zooms in.
      root.classList.toggle('dense', arrowsInView / (3 * (viewWidth || 1400)) > 1 / 3);
      placeLabels(visible, chartWidth());
      drawTicks(left);
    }

    function show(el, text) {
      if (el.textContent !== text) el.textContent = text;
      el.removeAttribute('visibility');
    }

    // Greedy, left to right per lane: each label takes the first of two rows
    // (above and below the lane bar) where it clears the previous one, else
    // hides. Near the right edge a label goes left of its marker. These are
    // the rules html.go applies for the page as written.
    function placeLabels(groups, width) {
      const ends = new Map();
      for (const labels of groups) {
        for (const l of labels) {
          const sim = l.el.classList.contains('sim-label');
          const key = sim ? '' : l.node;
          if (!ends.has(key)) ends.set(key, [-Infinity, -Infinity]);
          const end = ends.get(key);
          const x = X(l.t);
          const flip = x + 5 + l.w > width - 2;
          const start = flip ? x - 5 - l.w : x + 5;
          let row = -1;
          if (start >= end[0]) row = 0;
          else if (!sim && start >= end[1]) row = 1;
          l.el.setAttribute('x', flip ? x - 5 : x + 5);
          if (flip) l.el.setAttribute('text-anchor', 'end');
          else l.el.removeAttribute('text-anchor');
          if (row < 0) {
            l.el.setAttribute('visibility', 'hidden');
            continue;
          }
          end[row] = start + l.w + gap;
          l.el.removeAttribute('visibility');
          if (!sim) l.el.setAttribute('y', row === 0 ? l.cy - 13 : l.cy + 21);
        }
      }
    }

    // Ticks only for what is on screen: at full zoom a whole run would need
    // hundreds of thousands of them.
    function drawTicks(left) {
      const step = niceStep(90 / scale);
      const right = left + (viewWidth || 1400);
      const axisY = axisLine ? +axisLine.getAttribute('y1') : 26;
      let t = Math.max(0, Math.floor((left - pad) / scale / step) * step);
      const frag = document.createDocumentFragment();
      for (; t <= dur && X(t) <= right + 100; t += step) {
        const x = X(t);
        const line = document.createElementNS(NS, 'line');
        line.setAttribute('x1', x);
        line.setAttribute('x2', x);
        line.setAttribute('y1', axisY - 5);
        line.setAttribute('y2', height);
        const text = document.createElementNS(NS, 'text');
        text.setAttribute('x', x + 3);
        text.setAttribute('y', axisY - 9);
        text.textContent = fmtOffset(t);
        frag.append(line, text);
      }
      ticks.replaceChildren(frag);
      if (readout) readout.textContent = fmtOffset(Math.round((viewWidth || 1400) / scale)) + ' across';
    }

    const fitScale = () => Math.max((viewWidth - 2 * pad) / dur, 1e-9);
    // Browsers cap the size of a scrolling area; 8 million px is well inside.
    const maxScale = () => Math.max(fitScale(), Math.min(1, 8e6 / dur));

    // view shows time t (µs since the start) at anchor px from the left
    // edge of the view, at the given scale.
    function view(next, t, anchor) {
      scale = Math.min(Math.max(next, fitScale() / 2), maxScale());
      fitted = false;
      const left = Math.max(0, Math.min(pad + t * scale - anchor, chartWidth() - viewWidth));
      layout(left);
      scroller.scrollLeft = left;
    }

    function zoomTo(next, anchor) {
      view(next, (scroller.scrollLeft + anchor - pad) / scale, anchor);
    }

    const api = {
      zoomBy: (f) => zoomTo(scale * f, viewWidth / 2),
      fit: () => {
        scale = fitScale();
        fitted = true;
        layout(0);
        scroller.scrollLeft = 0;
      },
    };

    section.querySelectorAll('[data-zoom]').forEach((b) =>
      b.addEventListener('click', () => {
        active = api;
        if (b.dataset.zoom === 'in') api.zoomBy(1.5);
        else if (b.dataset.zoom === 'out') api.zoomBy(1 / 1.5);
        else api.fit();
      }));
    section.querySelectorAll('[data-toggle]').forEach((cb) => {
      const apply = () => {
        root.classList.toggle(cb.dataset.toggle, !cb.checked);
        for (const s of slices) {
          for (const a of s.arrows) a.hidden = hiddenBy(a.g);
        }
      };
      cb.addEventListener('change', () => { apply(); layout(scroller.scrollLeft); });
      apply();
    });
    scroller.addEventListener('wheel', (e) => {
      if (!e.ctrlKey && !e.metaKey) return;
      e.preventDefault();
      const anchor = e.clientX - scroller.getBoundingClientRect().left;
      zoomTo(scale * Math.exp(-e.deltaY * 0.002), anchor);
    }, { passive: false });
    let pending = false;
    scroller.addEventListener('scroll', () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; sync(scroller.scrollLeft); });
    });
    root.addEventListener('mouseenter', () => { active = api; });
    if (!active) active = api;

    let drag = null;
    scroller.addEventListener('mousedown', (e) => {
      if (e.button !== 0) return;
      drag = { x: e.clientX, left: scroller.scrollLeft };
      scroller.classList.add('dragging');
      e.preventDefault();
    });
    window.addEventListener('mousemove', (e) => {
      if (drag) scroller.scrollLeft = drag.left - (e.clientX - drag.x);
    });
    window.addEventListener('mouseup', () => {
      drag = null;
      scroller.classList.remove('dragging');
    });
    window.addEventListener('resize', () => {
      viewWidth = scroller.clientWidth;
      if (fitted) api.fit();
      else sync(scroller.scrollLeft);
    });

    chart.addEventListener('mouseover', (e) => {
      const el = tipped(e.target, chart);
      if (!el || !tip) return;
      tip.textContent = el.dataset.tip;
      tip.hidden = false;
      moveTip(e);
    });
    chart.addEventListener('mousemove', moveTip);
    chart.addEventListener('mouseout', () => { if (tip) tip.hidden = true; });

    if (viewWidth > 0) api.fit();
    else layout(0);
    showRange(location.hash);
    window.addEventListener('hashchange', () => showRange(location.hash));

    // #view=700-760 shows that range, in ms since the start of each run, so
    // a link (or a screenshot) can point at a moment.
    function showRange(hash) {
      const m = /view=([\d.]+)-([\d.]+)/.exec(hash);
      if (!m || viewWidth <= 0) return;
      const t0 = +m[1] * 1000;
      const t1 = +m[2] * 1000;
      if (t1 > t0) view((viewWidth - 2 * pad) / (t1 - t0), t0, pad);
    }
  }

  // tipped finds the element whose details to show, moving its <title> into
  // data-tip the first time so the browser's own tooltip does not double it.
  function tipped(el, stop) {
    for (; el && el !== stop; el = el.parentNode) {
      if (el.dataset && el.dataset.tip) return el;
      const title = el.querySelector && el.querySelector(':scope > title');
      if (title) {
        el.dataset.tip = title.textContent;
        title.remove();
        return el;
      }
    }
    return null;
  }

  function moveTip(e) {
    if (!tip || tip.hidden) return;
    const w = tip.offsetWidth;
    const h = tip.offsetHeight;
    let x = e.clientX + 14;
    let y = e.clientY + 16;
    if (x + w > window.innerWidth - 4) x = Math.max(4, e.clientX - w - 14);
    if (y + h > window.innerHeight - 4) y = Math.max(4, e.clientY - h - 16);
    tip.style.left = x + 'px';
    tip.style.top = y + 'px';
  }
})();
