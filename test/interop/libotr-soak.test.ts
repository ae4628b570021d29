// Soak against libotr: 2,000 consecutive fresh AKEs (alternating who starts, v3), each followed by a message
// both ways. Zero failures allowed, no retries: a peer implementation that fails 1 AKE in 10 (otr.js against
// libotr, through a leading-zero bug) would fail here almost surely, where one green AKE proves nothing.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { ensureHelperBuilt, injected, receivedTexts } from "../harness/libotr.js";
import { Link, OUR_NAME, hex, libOfType, ourKey, ourOfType, utf8Text } from "./link.js";

const AKES = Number(process.env.OTR_SOAK_AKES ?? 2000);

before(() => { ensureHelperBuilt(); ourKey(); });

test(`${AKES} consecutive AKEs plus messages against libotr, zero failures`, { timeout: 30 * 60_000 }, async (t) => {
  const link = await Link.open({ version: 3 });
  const failures: string[] = [];
  const started = Date.now();
  try {
    for (let i = 0; i < AKES && failures.length === 0; i++) {
      await link.lib.forget(OUR_NAME);
      link.renewOurs();
      link.trace.length = 0;
      if (i % 2 === 0) await link.fromOurs(link.conv.startAke());
      else await link.fromLib(await link.lib.send(OUR_NAME, "?OTRv3?"));
      let evs = link.take();
      const ours = ourOfType(evs.ours, "gone-secure"), lib = libOfType(evs.lib, "gone_secure");
      if (ours.length !== 1 || lib.length !== 1 || hex(ours[0]!.ssid) !== lib[0]!.ssid) {
        failures.push(`AKE ${i} (${i % 2 ? "libotr" : "we"} started): ours=${evs.ours.map((e) => JSON.stringify(e)).join(" ")} ` +
          `libotr=${evs.lib.filter((e) => e.ev !== "inject" && e.ev !== "ignored").map((e) => JSON.stringify(e)).join(" ")} ` +
          `trace=${JSON.stringify(link.trace)}`);
        break;
      }
      const out = utf8Text(1 + (i % 300), i);
      await link.fromOurs(link.conv.send(out));
      const back = utf8Text(1 + ((i * 7) % 300), i + 1);
      const libEvs = await link.lib.send(OUR_NAME, back);
      evs = link.take();
      const libGot = receivedTexts(evs.lib);
      if (libGot.length !== 1 || libGot[0] !== out) failures.push(`message ${i} to libotr: got ${JSON.stringify(libGot)}`);
      const lines = injected(libEvs);
      const got: string[] = [];
      for (const l of lines) {
        const r = link.conv.receive(l);
        for (const e of r.events) if (e.type === "received") got.push(e.text);
        if (r.events.some((e) => e.type === "malformed" || e.type === "unreadable")) {
          failures.push(`message ${i} from libotr: ${JSON.stringify(r.events)}`);
        }
      }
      if (got.length !== 1 || got[0] !== back) failures.push(`message ${i} from libotr: got ${JSON.stringify(got)}`);
    }
  } finally {
    await link.close();
  }
  t.diagnostic(`${AKES} AKEs in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  assert.deepEqual(failures, []);
});

const MIXED = Number(process.env.OTR_SOAK_MIXED ?? 100);

for (const [version, frag] of [[3, 150], [3, 400], [2, 150], [2, 400]] as const) {
  test(`${MIXED} consecutive AKEs plus 1-600-byte messages against libotr, v${version}, fragments of ${frag}, zero failures`, { timeout: 30 * 60_000 }, async () => {
    const link = await Link.open({ version, fragmentSize: frag });
    const failures: string[] = [];
    try {
      for (let i = 0; i < MIXED && failures.length === 0; i++) {
        await link.lib.forget(OUR_NAME);
        link.renewOurs();
        link.trace.length = 0;
        if (i % 2 === 0) await link.fromOurs(link.conv.startAke());
        else await link.fromLib(await link.lib.send(OUR_NAME, "?OTRv23?"));
        let evs = link.take();
        const ours = ourOfType(evs.ours, "gone-secure"), lib = libOfType(evs.lib, "gone_secure");
        if (ours.length !== 1 || lib.length !== 1 || ours[0]!.version !== version || hex(ours[0]!.ssid) !== lib[0]!.ssid) {
          failures.push(`AKE ${i}: ours=${JSON.stringify(evs.ours)} libotr=${JSON.stringify(evs.lib.filter((e) => e.ev !== "inject" && e.ev !== "ignored"))}`);
          break;
        }
        const out = utf8Text(1 + ((i * 37) % 600), i);
        await link.fromOurs(link.conv.send(out));
        const back = utf8Text(1 + ((i * 53) % 600), i + 2);
        await link.fromLib(await link.lib.send(OUR_NAME, back));
        evs = link.take();
        const libGot = receivedTexts(evs.lib);
        const weGot = ourOfType(evs.ours, "received").map((e) => e.text);
        if (libGot.length !== 1 || libGot[0] !== out) failures.push(`message ${i} to libotr: got ${JSON.stringify(libGot)}`);
        if (weGot.length !== 1 || weGot[0] !== back) failures.push(`message ${i} from libotr: got ${JSON.stringify(weGot)} (${JSON.stringify(evs.ours)})`);
        for (const { from, line } of link.trace) {
          if (from === "ours" && /^\?OTR[:|,]/.test(line) && line.length > frag) failures.push(`our line of ${line.length} chars at ${i}`);
        }
      }
    } finally {
      await link.close();
    }
    assert.deepEqual(failures, []);
  });
}
