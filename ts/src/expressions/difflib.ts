/** `difflib.get_close_matches(word, possibilities, n=1, cutoff=0.6)`, as Python computes it (short strings). */

function matchingCharacters(a: string[], b: string[]): number {
  const b2j = new Map<string, number[]>();
  b.forEach((ch, j) => {
    const list = b2j.get(ch);
    if (list) list.push(j);
    else b2j.set(ch, [j]);
  });
  const longest = (alo: number, ahi: number, blo: number, bhi: number): [number, number, number] => {
    let besti = alo;
    let bestj = blo;
    let bestsize = 0;
    let j2len = new Map<number, number>();
    for (let i = alo; i < ahi; i++) {
      const next = new Map<number, number>();
      for (const j of b2j.get(a[i]!) ?? []) {
        if (j < blo) continue;
        if (j >= bhi) break;
        const k = (j2len.get(j - 1) ?? 0) + 1;
        next.set(j, k);
        if (k > bestsize) {
          besti = i - k + 1;
          bestj = j - k + 1;
          bestsize = k;
        }
      }
      j2len = next;
    }
    return [besti, bestj, bestsize];
  };
  let total = 0;
  const queue: [number, number, number, number][] = [[0, a.length, 0, b.length]];
  while (queue.length) {
    const [alo, ahi, blo, bhi] = queue.pop()!;
    const [i, j, k] = longest(alo, ahi, blo, bhi);
    if (k) {
      total += k;
      if (alo < i && blo < j) queue.push([alo, i, blo, j]);
      if (i + k < ahi && j + k < bhi) queue.push([i + k, ahi, j + k, bhi]);
    }
  }
  return total;
}

export function ratio(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  const length = x.length + y.length;
  return length ? (2 * matchingCharacters(x, y)) / length : 1;
}

export function closeMatch(word: string, possibilities: string[], cutoff = 0.6): string | undefined {
  let best: [number, string] | undefined;
  for (const candidate of possibilities) {
    const score = ratio(candidate, word);
    if (score < cutoff) continue;
    if (!best || score > best[0] || (score === best[0] && candidate > best[1])) best = [score, candidate];
  }
  return best?.[1];
}
