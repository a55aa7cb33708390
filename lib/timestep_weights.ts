/**
 * Per-timestep weights for the diffusion classifier, learned on validation error grids
 * (lib/error_grid.ts) by multinomial logistic regression on the per-timestep errors:
 *
 *   logit_c = −β · (1/G) Σ_j w_j · e[c, j],   w = G · softmax(θ)  (positive, mean 1)
 *
 * with a ridge penalty λ · mean((θ − θ̄)²) that pulls toward uniform weights. Every class is
 * scored on the same (t, ε) draws, so only the differences e[c, j] − e[c', j] matter: the fit
 * learns which timesteps separate classes and how much. Adam on the exact gradient, from
 * uniform weights: deterministic for the same errors.
 *
 * The classifier applies w by multiplying each error by its grid index's weight
 * (`DCSettings.weights`), so a staged or sequential schedule ranks and tests weighted errors.
 */

export interface WeightFitOptions {
  /** ridge strength on θ (0: none) */
  lambda?: number;
  iterations?: number;
  learningRate?: number;
}

export interface WeightFit {
  /** one per grid index, mean 1 */
  weights: number[];
  /** the fitted logit scale β */
  beta: number;
  /** mean negative log-likelihood on the fitted images at the end */
  nll: number;
  iterations: number;
}

/**
 * Fit weights on images `subset` of an error grid laid out [image][class][grid index]
 * (`err`, with `classes` and `grid` per image) with true `labels` (indexed like the images).
 */
export function fitTimestepWeights(
  err: Float32Array,
  labels: ArrayLike<number>,
  classes: number,
  grid: number,
  subset: readonly number[],
  opts: WeightFitOptions = {},
): WeightFit {
  const K = classes, G = grid;
  const lambda = opts.lambda ?? 0.01;
  const iterations = opts.iterations ?? 600;
  const lr = opts.learningRate ?? 0.05;
  if (subset.length === 0) throw new RangeError("no images to fit on");
  if (err.length % (K * G) !== 0) throw new RangeError("the error grid is not whole images");

  // parameters: θ (G) and log β, Adam state for each
  const P = G + 1;
  const param = new Float64Array(P);
  param[G] = Math.log(1000);
  const m1 = new Float64Array(P), m2 = new Float64Array(P);
  const b1 = 0.9, b2 = 0.999, epsAdam = 1e-8;
  const w = new Float64Array(G);
  const gW = new Float64Array(G);
  const grad = new Float64Array(P);
  const s = new Float64Array(K);
  let nll = NaN;

  const weightsOf = () => {
    let max = -Infinity;
    for (let j = 0; j < G; j++) max = Math.max(max, param[j]);
    let z = 0;
    for (let j = 0; j < G; j++) z += w[j] = Math.exp(param[j] - max);
    for (let j = 0; j < G; j++) w[j] *= G / z;
  };

  for (let it = 0; it <= iterations; it++) {
    weightsOf();
    const beta = Math.exp(param[G]);
    gW.fill(0);
    let gLogBeta = 0;
    let loss = 0;
    for (const i of subset) {
      const y = labels[i];
      const base = i * K * G;
      let max = -Infinity;
      for (let c = 0; c < K; c++) {
        let acc = 0;
        for (let j = 0; j < G; j++) acc += w[j] * err[base + c * G + j];
        s[c] = (-beta * acc) / G;
        max = Math.max(max, s[c]);
      }
      let z = 0;
      for (let c = 0; c < K; c++) z += Math.exp(s[c] - max);
      loss += -(s[y] - max - Math.log(z));
      for (let c = 0; c < K; c++) {
        const r = Math.exp(s[c] - max) / z - (c === y ? 1 : 0);
        gLogBeta += r * s[c];
        const f = (-beta * r) / G;
        for (let j = 0; j < G; j++) gW[j] += f * err[base + c * G + j];
      }
    }
    const n = subset.length;
    nll = loss / n;
    if (it === iterations) break;
    // through w = G·softmax(θ): dL/dθ_k = w_k (gW_k − Σ_j w_j gW_j / G)
    let dot = 0;
    for (let j = 0; j < G; j++) dot += (w[j] * gW[j]) / n / G;
    let mean = 0;
    for (let j = 0; j < G; j++) mean += param[j] / G;
    for (let j = 0; j < G; j++) {
      grad[j] = w[j] * (gW[j] / n - dot) + (2 * lambda * (param[j] - mean)) / G;
    }
    grad[G] = gLogBeta / n;
    const t = it + 1;
    for (let k = 0; k < P; k++) {
      m1[k] = b1 * m1[k] + (1 - b1) * grad[k];
      m2[k] = b2 * m2[k] + (1 - b2) * grad[k] * grad[k];
      const mh = m1[k] / (1 - b1 ** t), vh = m2[k] / (1 - b2 ** t);
      param[k] -= (lr * mh) / (Math.sqrt(vh) + epsAdam);
    }
  }
  weightsOf();
  // rounded so the weights a manifest or a record carries are the ones that were simulated
  return {
    weights: Array.from(w, (v) => Number(v.toPrecision(6))),
    beta: Math.exp(param[G]),
    nll,
    iterations,
  };
}
