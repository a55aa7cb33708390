/** A dependency-free line chart as SVG (the report's checkpoint curve). */

export interface Series {
  name: string;
  color: string;
  points: { x: number; y: number; lo?: number; hi?: number }[];
}

export interface ChartOptions {
  /** a log10 x axis (costs spanning orders of magnitude) */
  xLog?: boolean;
  width?: number;
  /** legend column width */
  legend?: number;
}

export function lineChart(
  title: string,
  xLabel: string,
  yLabel: string,
  series: Series[],
  yRange: [number, number] = [0, 1],
  opts: ChartOptions = {},
): string {
  const W = opts.width ?? 640;
  const H = 400;
  const m = { l: 60, r: opts.legend ?? 170, t: 40, b: 50 };
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const f = opts.xLog ? Math.log10 : (x: number) => x;
  const [x0, x1] = [f(Math.min(...xs)), f(Math.max(...xs))];
  const sx = (x: number) => m.l + ((f(x) - x0) / Math.max(1e-9, x1 - x0)) * (W - m.l - m.r);
  const sy = (y: number) => H - m.b - ((y - yRange[0]) / (yRange[1] - yRange[0])) * (H - m.t - m.b);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${m.l}" y="22" font-size="14">${esc(title)}</text>`,
  ];
  for (let k = 0; k <= 5; k++) {
    const y = yRange[0] + (k / 5) * (yRange[1] - yRange[0]);
    out.push(
      `<line x1="${m.l}" x2="${W - m.r}" y1="${sy(y)}" y2="${sy(y)}" stroke="#ddd"/>`,
      `<text x="${m.l - 6}" y="${sy(y) + 4}" text-anchor="end">${(y * 100).toFixed(0)}%</text>`,
    );
  }
  for (const x of xTicks(xs, !!opts.xLog)) {
    out.push(`<text x="${sx(x)}" y="${H - m.b + 16}" text-anchor="middle">${x}</text>`);
  }
  out.push(
    `<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text x="16" y="${H / 2}" text-anchor="middle" transform="rotate(-90 16 ${H / 2})">${
      esc(yLabel)
    }</text>`,
  );
  series.forEach((s, i) => {
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    for (const p of pts) {
      if (p.lo !== undefined && p.hi !== undefined) {
        out.push(
          `<line x1="${sx(p.x)}" x2="${sx(p.x)}" y1="${sy(p.lo)}" y2="${
            sy(p.hi)
          }" stroke="${s.color}" stroke-opacity="0.5"/>`,
        );
      }
    }
    out.push(
      `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${
        pts.map((p) => `${sx(p.x)},${sy(p.y)}`).join(" ")
      }"/>`,
      ...pts.map((p) => `<circle cx="${sx(p.x)}" cy="${sy(p.y)}" r="3" fill="${s.color}"/>`),
      `<rect x="${W - m.r + 12}" y="${m.t + i * 20}" width="12" height="3" fill="${s.color}"/>`,
      `<text x="${W - m.r + 28}" y="${m.t + i * 20 + 5}">${esc(s.name)}</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

/** The x values themselves when few; else round ticks (1-2-5 steps, or powers on a log axis). */
function xTicks(xs: number[], log: boolean): number[] {
  const distinct = [...new Set(xs)].sort((a, b) => a - b);
  if (distinct.length <= 10 && !log) return distinct;
  const [lo, hi] = [distinct[0], distinct[distinct.length - 1]];
  if (log) {
    const out: number[] = [];
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
      for (const k of [1, 2, 5]) {
        const v = k * 10 ** e;
        if (v >= lo && v <= hi) out.push(v);
      }
    }
    return out;
  }
  const raw = (hi - lo) / 6;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((v) => v >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) out.push(v);
  return out;
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
