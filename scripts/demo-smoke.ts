// Drives a running demo (scripts/demo.sh) the way a person would: the demo user opens a DM with the bot,
// connects to the IRC network, an IRC user messages the demo user's puppet, the message arrives in Matrix from
// the ghost, and the reply arrives on IRC. Run by `DEMO_SMOKE=1 bash scripts/demo.sh`; exits non-zero on failure.
import { randomBytes } from "node:crypto";
import { MatrixClient } from "../test/harness/matrix-client.js";
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
  const me = await MatrixClient.login(hsUrl, user, password);
  step(`logged in as ${me.userId}`);
  const mgmt = await me.createDm(bot);
  await me.waitForEvent(mgmt, (e) => e.type === "m.room.member" && e.state_key === bot && e.content.membership === "join", T);
  step("the bot joined the management room");
  const from = me.mark();
  await me.sendText(mgmt, `connect ${network}`);
  // A second run finds the connection restored from the store: "already have a connection" is fine too.
  await me.waitForMessage(mgmt, /^Connected to |already have a connection/, { sender: bot, timeoutMs: T, from });
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
    const room = await me.waitForInvite((_r, st) => st.some((e) => e.type === "m.room.member" && e.sender.startsWith(ghostPrefix)
      && e.sender.toLowerCase().includes(contactNick)), T);
    await me.join(room);
    await me.waitForMessage(room, (b) => b.includes(`hello from IRC ${tag}`), { timeoutMs: T });
    step("the IRC message arrived in Matrix from the ghost");
    const mark = contact.mark();
    await me.sendText(room, `hello from Matrix ${tag}`);
    // Opportunistic OTR may append a whitespace tag to the first plaintext message: match on the text.
    await contact.waitForPrivmsg(user, (t) => t.includes(`hello from Matrix ${tag}`), T, mark);
    step("the Matrix reply arrived on IRC");
  } finally {
    await contact.quit().catch(() => contact.destroy());
  }
  process.stdout.write("demo smoke: OK\n");
}

main().then(() => process.exit(0), (e: unknown) => {
  process.stderr.write(`demo smoke: FAILED: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
