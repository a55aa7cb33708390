/** A dependency-free line chart as SVG (the report's checkpoint curve). */

export interface Series {
  name: string;
  color: string;
  points: { x: number; y: number; lo?: number; hi?: number }[];
}

export function lineChart(
  title: string,
  xLabel: string,
  yLabel: string,
  series: Series[],
  yRange: [number, number] = [0, 1],
): string {
  const W = 640;
  const H = 400;
  const m = { l: 60, r: 170, t: 40, b: 50 };
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const sx = (x: number) => m.l + ((x - x0) / Math.max(1e-9, x1 - x0)) * (W - m.l - m.r);
  const sy = (y: number) => H - m.b - ((y - yRange[0]) / (yRange[1] - yRange[0])) * (H - m.t - m.b);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - m.r / 2}" y="22" text-anchor="middle" font-size="14">${esc(title)}</text>`,
  ];
  for (let k = 0; k <= 5; k++) {
    const y = yRange[0] + (k / 5) * (yRange[1] - yRange[0]);
    out.push(
      `<line x1="${m.l}" x2="${W - m.r}" y1="${sy(y)}" y2="${sy(y)}" stroke="#ddd"/>`,
      `<text x="${m.l - 6}" y="${sy(y) + 4}" text-anchor="end">${(y * 100).toFixed(0)}%</text>`,
    );
  }
  for (const x of [...new Set(xs)].sort((a, b) => a - b)) {
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

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
