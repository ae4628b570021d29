// Drives a running demo (scripts/demo.sh) the way a person would, on an Element-like client (matrix-js-sdk with
// its Rust crypto, cross-signing bootstrapped): the demo user opens an encrypted DM with the bot, connects to the
// IRC network, an IRC user messages the demo user's puppet, the message arrives in Matrix from the ghost in an
// encrypted DM, and the encrypted reply arrives on IRC. Run by `DEMO_SMOKE=1 bash scripts/demo.sh`; exits
// non-zero on failure.
import { randomBytes } from "node:crypto";
import { E2eeUser } from "../test/harness/e2ee-user.js";
import { connectIrc } from "../test/harness/irc-client.js";

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`demo-smoke: ${name} is not set`);
  return v;
}

const hsUrl = env("DEMO_HS_URL");
const domain = env("DEMO_SERVER_NAME");
const user = env("DEMO_USER");
const password = env("DEMO_PASSWORD");
const bot = `@${env("DEMO_BOT_LOCALPART")}:${domain}`;
const network = env("DEMO_NETWORK");
const ircPort = Number(env("DEMO_IRC_PORT"));
const T = 120_000;

function step(s: string): void { process.stderr.write(`[demo-smoke] ${s}\n`); }

async function main(): Promise<void> {
  const me = await E2eeUser.login({ url: hsUrl }, user, password, { deviceName: "demo-smoke" });
  try {
    await smoke(me);
  } finally {
    // The smoke client's device is not needed again: a second run logs in a fresh one.
    await me.logout().catch(() => me.stop());
  }
  process.stdout.write("demo smoke: OK\n");
}

async function smoke(me: E2eeUser): Promise<void> {
  step(`logged in as ${me.userId} on device ${me.deviceId}`);
  await me.bootstrapCrossSigning();
  const mgmt = await me.createEncryptedDm(bot);
  const intro = await me.waitForMessage(mgmt, (m) => m.sender === bot && /management room/.test(String(m.content.body)), T);
  if (!intro.encrypted) throw new Error("the bot answered in clear in an encrypted room");
  step("the bot joined the encrypted management room and answered encrypted");
  await me.sendText(mgmt, `connect ${network}`);
  // A second run finds the connection restored from the store: "already have a connection" is fine too.
  await me.waitForMessage(mgmt, (m) => m.sender === bot && /^Connected to |already have a connection/.test(String(m.content.body)), T);
  step(`connected to ${network}`);

  const tag = randomBytes(4).toString("hex");
  const contactNick = `smoke${tag}`;
  const contact = await connectIrc("127.0.0.1", ircPort, contactNick);
  try {
    // Wait until the puppet is on the server (ISON lists it), so the first message is not a 401.
    const deadline = Date.now() + T;
    for (;;) {
      const at = contact.mark();
      contact.send(`ISON ${user}`);
      const ison = await contact.waitFor((m) => m.command === "303", T, at);
      if ((ison.params.at(-1) ?? "").toLowerCase().split(" ").includes(user.toLowerCase())) break;
      if (Date.now() > deadline) throw new Error(`the puppet ${user} never appeared on IRC`);
      await new Promise((r) => setTimeout(r, 500));
    }
    contact.privmsg(user, `hello from IRC ${tag}`);
    const ghostPrefix = `@irc_${network}_`;
    const room = await me.waitForInvite((_r, inviter) => inviter !== undefined && inviter.startsWith(ghostPrefix)
      && inviter.toLowerCase().includes(contactNick), T);
    await me.joinRoom(room);
    const hello = await me.waitForMessage(room, (m) => String(m.content.body).includes(`hello from IRC ${tag}`), T);
    if (!hello.encrypted) throw new Error("the ghost's DM is not encrypted");
    if (hello.shield?.colour !== "none") throw new Error(`the ghost's message has a ${hello.shield?.colour} shield (${hello.shield?.reason})`);
    step("the IRC message arrived in Matrix from the ghost, encrypted, with no warning shield");
    const mark = contact.mark();
    await me.sendText(room, `hello from Matrix ${tag}`);
    // Opportunistic OTR may append a whitespace tag to the first plaintext message: match on the text.
    await contact.waitForPrivmsg(user, (t) => t.includes(`hello from Matrix ${tag}`), T, mark);
    step("the encrypted Matrix reply arrived on IRC");
  } finally {
    await contact.quit().catch(() => contact.destroy());
  }
}

main().then(() => process.exit(0), (e: unknown) => {
  process.stderr.write(`demo smoke: FAILED: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
