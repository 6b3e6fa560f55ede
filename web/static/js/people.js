// How a teammate shows up: their display name and a colour of their own,
// the same on every screen and for every viewer (it is derived from the
// user id), so that Ann's outline on a field matches Ann's avatar.

// Twelve hues far enough apart to tell people apart at a glance.
const HUES = [210, 340, 140, 30, 270, 180, 0, 95, 300, 50, 240, 160];

export function colourOf(user) {
  let x = 0;
  for (const ch of String(user || "")) x = (x * 131 + ch.codePointAt(0) * 7919) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0x5bd1e995) >>> 0; // mix, so that near names differ
  x = (x ^ (x >>> 15)) >>> 0;
  return `hsl(${HUES[x % HUES.length]} 65% 42%)`;
}

// nameOf is the name to show for an editor entry or an author
// ({user, name}), falling back to names learned elsewhere (history's
// people map), then to the id.
export function nameOf(who, names = {}) {
  if (!who) return "A teammate";
  if (typeof who === "string") return names[who] || who;
  return who.name || names[who.user] || who.user || "A teammate";
}
