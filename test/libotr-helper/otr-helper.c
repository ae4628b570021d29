/*
 * otr-helper: libotr 4.1.x (Debian libotr5-dev) as a test peer and benchmark for matrix-otr-irc.
 *
 * Three modes, chosen by argv[1]:
 *
 *   otr-helper [serve]                 line protocol on stdin/stdout (default)
 *   otr-helper bench [what...]          C-side timing loops, libotr talking to libotr in one process;
 *                                       prints one JSON object. what = keygen ake data smp mem (default all)
 *   otr-helper vectors <outdir>         writes known-answer vectors (JSON) from libotr's exported functions
 *   otr-helper genkey <file> <account> <protocol>   write a libotr private key file, print its fingerprint
 *   otr-helper fingerprint <file>       print {"account","protocol","fp","fp_raw"} per key in a libotr key file
 *
 * Serve protocol. One process = one OtrlUserState with one account (set by `account`, default
 * "alice"/"irc"). Input: one command per line, fields separated by TAB. Any field carrying
 * arbitrary bytes (messages, secrets, questions, use data) is HEX encoded, so no escaping is needed.
 * Output: one JSON object per line. Every command ends with {"ev":"done","cmd":NAME,"ok":true|false,...};
 * the events a command caused (injected wire messages, gone secure, SMP events, received plaintext ...)
 * are printed before its "done", so the driver can collect them per command. All bytes in output are hex.
 *
 *   account  <name> <protocol>
 *   genkey   <keyfile> <instagfile>     generate a DSA key (+instance tag) into files and load them
 *   loadkey  <keyfile> [instagfile]     load a key file (and instag file, else a fresh tag in memory)
 *   policy   <flags>                    number, or names joined by '|': V2 V3 REQUIRE WS_TAG WS_START
 *                                       ERR_START, or presets NEVER MANUAL OPPORTUNISTIC ALWAYS
 *   mms      <n>                        max_message_size (0 = no fragmentation)
 *   send     <peer> <hex plaintext>     otrl_message_sending + fragment_and_send (inject)
 *   recv     <peer> <hex wire text>     otrl_message_receiving
 *   smp_start   <peer> <hex secret> [<hex question>]
 *   smp_respond <peer> <hex secret>
 *   smp_abort   <peer>
 *   symkey   <peer> <use> <hex usedata> otrl_message_symkey (sends TLV 8, reports the key)
 *   disconnect <peer>                   otrl_message_disconnect (TLV 1)
 *   status   <peer>                     state of the best instance
 *   dhstate  <peer>                     the best instance's DH keys (secret!), for forging test messages:
 *                                       {"ev":"dhstate","our_keyid","our_x","our_old_x","their_keyid","their_y","their_old_y"}
 *   writefps <file>                     otrl_privkey_write_fingerprints
 *   readfps  <file>                     otrl_privkey_read_fingerprints, then lists every known fingerprint:
 *                                       {"ev":"fpentry","peer":P,"account":A,"protocol":R,"fp_raw":HEX,"trust":T}
 *   settrust <peer> <hex fp> <trust>    otrl_context_set_trust on a known fingerprint
 *   verify   <p> <q> <g> <y> <hex data> <hex sig>   otrl_privkey_verify with a DSA public key given as hex
 *                                       integers; reports {"ev":"verify","valid":true|false}
 *   forget   <peer>                     drop every context (master and instances) for peer, as if never seen
 *   poll                                otrl_message_poll
 *   fingerprint                         our own fingerprint
 *   quit
 *
 * Events:
 *   {"ev":"inject","to":P,"msg":HEX}               a wire line libotr wants sent to P
 *   {"ev":"gone_secure","peer":P,"version":V,"fp":HUMAN,"fp_raw":HEX,"ssid":HEX,"their_instance":N,"our_instance":N}
 *   {"ev":"gone_insecure","peer":P} {"ev":"still_secure","peer":P,"is_reply":B}
 *   {"ev":"new_fingerprint","peer":P,"fp_raw":HEX}
 *   {"ev":"msg_event","event":NAME,"peer":P,"msg":HEX|null,"err":N}
 *   {"ev":"smp","event":NAME,"peer":P,"progress":N,"question":HEX|null}
 *   {"ev":"received","peer":P,"text":HEX,"tlvs":[N..],"state":"plaintext|encrypted|finished","otr":B}
 *   {"ev":"ignored","peer":P}                      libotr swallowed the message (internal protocol)
 *   {"ev":"symkey","peer":P,"use":N,"usedata":HEX,"key":HEX}    received_symkey callback
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
#include <malloc.h>
#include <gcrypt.h>
#include <libotr/proto.h>
#include <libotr/userstate.h>
#include <libotr/message.h>
#include <libotr/privkey.h>
#include <libotr/instag.h>
#include <libotr/context.h>
#include <libotr/context_priv.h>
#include <libotr/dh.h>
#include <libotr/tlv.h>
#include <libotr/version.h>

/* ---------- small output helpers ---------- */

static void put_hex(FILE *f, const unsigned char *b, size_t n) {
    static const char *d = "0123456789abcdef";
    fputc('"', f);
    for (size_t i = 0; i < n; i++) { fputc(d[b[i] >> 4], f); fputc(d[b[i] & 15], f); }
    fputc('"', f);
}
static void put_hexs(FILE *f, const char *s) {
    if (!s) { fputs("null", f); return; }
    put_hex(f, (const unsigned char *)s, strlen(s));
}
/* JSON string for names we chose ourselves (ASCII, no quotes). */
static void put_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s); else fputc(*s, f);
    }
    fputc('"', f);
}
static int unhex(const char *h, unsigned char **out, size_t *outlen) {
    size_t n = strlen(h);
    if (n % 2) return -1;
    unsigned char *b = malloc(n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        unsigned int v;
        if (sscanf(h + 2 * i, "%2x", &v) != 1) { free(b); return -1; }
        b[i] = (unsigned char)v;
    }
    b[n / 2] = 0;
    *out = b; *outlen = n / 2;
    return 0;
}
static void put_mpi(FILE *f, gcry_mpi_t m) {
    unsigned char *buf = NULL; size_t n = 0;
    gcry_mpi_aprint(GCRYMPI_FMT_USG, &buf, &n, m);
    put_hex(f, buf, n);
    gcry_free(buf);
}
static double now_s(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---------- endpoint: one userstate + one account ---------- */

typedef struct Endpoint {
    OtrlUserState us;
    char account[128];
    char protocol[64];
    OtrlPolicy policy;
    int mms;
    int interactive;          /* print events to stdout */
    /* bench routing: injected messages go to `other`'s queue */
    struct Endpoint *other;
    int injects;              /* count of injects during the current call */
    int secure_count, insecure_count, smp_success, smp_failure, smp_ask, smp_other;
    int received_count;
    size_t last_received_len;
    const unsigned char *auto_smp_secret; size_t auto_smp_secret_len;
} Endpoint;

static const char *state_name(OtrlMessageState s) {
    switch (s) {
    case OTRL_MSGSTATE_PLAINTEXT: return "plaintext";
    case OTRL_MSGSTATE_ENCRYPTED: return "encrypted";
    case OTRL_MSGSTATE_FINISHED: return "finished";
    }
    return "unknown";
}
static const char *msgevent_name(OtrlMessageEvent e) {
    static const char *n[] = { "NONE", "ENCRYPTION_REQUIRED", "ENCRYPTION_ERROR", "CONNECTION_ENDED",
        "SETUP_ERROR", "MSG_REFLECTED", "MSG_RESENT", "RCVDMSG_NOT_IN_PRIVATE", "RCVDMSG_UNREADABLE",
        "RCVDMSG_MALFORMED", "LOG_HEARTBEAT_RCVD", "LOG_HEARTBEAT_SENT", "RCVDMSG_GENERAL_ERR",
        "RCVDMSG_UNENCRYPTED", "RCVDMSG_UNRECOGNIZED", "RCVDMSG_FOR_OTHER_INSTANCE" };
    return (unsigned)e < sizeof n / sizeof *n ? n[e] : "UNKNOWN";
}
static const char *smpevent_name(OtrlSMPEvent e) {
    static const char *n[] = { "NONE", "ERROR", "ABORT", "CHEATED", "ASK_FOR_ANSWER", "ASK_FOR_SECRET",
        "IN_PROGRESS", "SUCCESS", "FAILURE" };
    return (unsigned)e < sizeof n / sizeof *n ? n[e] : "UNKNOWN";
}

/* ---------- bench message queue ---------- */

typedef struct { Endpoint *to; char *sender; char *msg; } QItem;
static QItem *queue; static size_t qhead, qtail, qcap;
static void q_push(Endpoint *to, const char *sender, const char *msg) {
    if (qtail == qcap) {
        if (qhead > 0) { memmove(queue, queue + qhead, (qtail - qhead) * sizeof *queue); qtail -= qhead; qhead = 0; }
        else { qcap = qcap ? qcap * 2 : 64; queue = realloc(queue, qcap * sizeof *queue); }
    }
    queue[qtail].to = to; queue[qtail].sender = strdup(sender); queue[qtail].msg = strdup(msg); qtail++;
}
/* bench names: alice's peers are "bob_<i>", bob's peers are "alice_<i>"; swap the prefix to route. */
static void peer_swap(const char *recipient, char *out, size_t n) {
    const char *us = strchr(recipient, '_');
    snprintf(out, n, "%s%s", recipient[0] == 'b' ? "alice" : "bob", us ? us : "");
}

/* ---------- libotr callbacks ---------- */

static OtrlPolicy cb_policy(void *opdata, ConnContext *c) { (void)c; return ((Endpoint *)opdata)->policy; }
static void cb_create_privkey(void *opdata, const char *a, const char *p) {
    Endpoint *e = opdata;
    if (e->interactive) { printf("{\"ev\":\"create_privkey\",\"account\":"); put_str(stdout, a); printf(",\"protocol\":"); put_str(stdout, p); printf("}\n"); }
}
static int cb_is_logged_in(void *o, const char *a, const char *p, const char *r) { (void)o; (void)a; (void)p; (void)r; return 1; }
static void cb_inject(void *opdata, const char *a, const char *p, const char *recipient, const char *message) {
    Endpoint *e = opdata; (void)a; (void)p;
    e->injects++;
    if (e->interactive) {
        printf("{\"ev\":\"inject\",\"to\":"); put_str(stdout, recipient); printf(",\"msg\":"); put_hexs(stdout, message); printf("}\n");
    } else if (e->other) {
        char sender[160]; peer_swap(recipient, sender, sizeof sender);
        q_push(e->other, sender, message);
    }
}
static void cb_update_context_list(void *o) { (void)o; }
static void cb_new_fingerprint(void *opdata, OtrlUserState us, const char *a, const char *p, const char *username, unsigned char fp[20]) {
    Endpoint *e = opdata; (void)us; (void)a; (void)p;
    if (e->interactive) { printf("{\"ev\":\"new_fingerprint\",\"peer\":"); put_str(stdout, username); printf(",\"fp_raw\":"); put_hex(stdout, fp, 20); printf("}\n"); }
}
static void cb_write_fingerprints(void *o) { (void)o; }
static void cb_gone_secure(void *opdata, ConnContext *c) {
    Endpoint *e = opdata;
    e->secure_count++;
    if (!e->interactive) return;
    char human[OTRL_PRIVKEY_FPRINT_HUMAN_LEN];
    printf("{\"ev\":\"gone_secure\",\"peer\":"); put_str(stdout, c->username);
    printf(",\"version\":%u,\"fp\":", c->protocol_version);
    if (c->active_fingerprint && c->active_fingerprint->fingerprint) {
        otrl_privkey_hash_to_human(human, c->active_fingerprint->fingerprint);
        put_str(stdout, human); printf(",\"fp_raw\":"); put_hex(stdout, c->active_fingerprint->fingerprint, 20);
    } else printf("null,\"fp_raw\":null");
    printf(",\"ssid\":"); put_hex(stdout, c->sessionid, c->sessionid_len);
    printf(",\"their_instance\":%u,\"our_instance\":%u}\n", c->their_instance, c->our_instance);
}
static void cb_gone_insecure(void *opdata, ConnContext *c) {
    Endpoint *e = opdata;
    e->insecure_count++;
    if (e->interactive) { printf("{\"ev\":\"gone_insecure\",\"peer\":"); put_str(stdout, c->username); printf("}\n"); }
}
static void cb_still_secure(void *opdata, ConnContext *c, int is_reply) {
    Endpoint *e = opdata;
    if (e->interactive) { printf("{\"ev\":\"still_secure\",\"peer\":"); put_str(stdout, c->username); printf(",\"is_reply\":%d}\n", is_reply); }
}
static int cb_max_message_size(void *opdata, ConnContext *c) { (void)c; return ((Endpoint *)opdata)->mms; }
static const char *cb_account_name(void *o, const char *a, const char *p) { (void)o; (void)p; return a; }
static void cb_account_name_free(void *o, const char *n) { (void)o; (void)n; }
static void cb_received_symkey(void *opdata, ConnContext *c, unsigned int use, const unsigned char *usedata, size_t usedatalen, const unsigned char *symkey) {
    Endpoint *e = opdata;
    if (!e->interactive) return;
    printf("{\"ev\":\"symkey\",\"peer\":"); put_str(stdout, c->username);
    printf(",\"use\":%u,\"usedata\":", use); put_hex(stdout, usedata, usedatalen);
    printf(",\"key\":"); put_hex(stdout, symkey, OTRL_EXTRAKEY_BYTES); printf("}\n");
}
static const char *cb_otr_error_message(void *o, ConnContext *c, OtrlErrorCode code) {
    (void)o; (void)c;
    switch (code) {
    case OTRL_ERRCODE_ENCRYPTION_ERROR: return strdup("Error occurred encrypting message.");
    case OTRL_ERRCODE_MSG_NOT_IN_PRIVATE: return strdup("You sent encrypted data to a peer who wasn't expecting it.");
    case OTRL_ERRCODE_MSG_UNREADABLE: return strdup("You transmitted an unreadable encrypted message.");
    case OTRL_ERRCODE_MSG_MALFORMED: return strdup("You transmitted a malformed data message.");
    default: return strdup("error");
    }
}
static void cb_otr_error_message_free(void *o, const char *m) { (void)o; free((char *)m); }
/* SMP events that need a follow-up call are recorded and acted on after the libotr call returns,
 * because libotr's message functions are not meant to be re-entered from inside a callback. */
static ConnContext *pending_abort_ctx;
static ConnContext *pending_respond_ctx;
static void cb_handle_smp_event(void *opdata, OtrlSMPEvent ev, ConnContext *c, unsigned short progress, char *question) {
    Endpoint *e = opdata;
    if (ev == OTRL_SMPEVENT_SUCCESS) e->smp_success++;
    else if (ev == OTRL_SMPEVENT_FAILURE) e->smp_failure++;
    else if (ev == OTRL_SMPEVENT_ASK_FOR_SECRET || ev == OTRL_SMPEVENT_ASK_FOR_ANSWER) {
        e->smp_ask++;
        if (e->auto_smp_secret) pending_respond_ctx = c;
    } else if (ev != OTRL_SMPEVENT_IN_PROGRESS) e->smp_other++;
    /* libotr asks the application to abort after CHEATED and ERROR. */
    if (ev == OTRL_SMPEVENT_CHEATED || ev == OTRL_SMPEVENT_ERROR) pending_abort_ctx = c;
    if (!e->interactive) return;
    printf("{\"ev\":\"smp\",\"event\":\"%s\",\"peer\":", smpevent_name(ev)); put_str(stdout, c->username);
    printf(",\"progress\":%u,\"question\":", progress); put_hexs(stdout, question); printf("}\n");
}
static void cb_handle_msg_event(void *opdata, OtrlMessageEvent ev, ConnContext *c, const char *message, gcry_error_t err) {
    Endpoint *e = opdata;
    if (!e->interactive) {
        if (ev != OTRL_MSGEVENT_LOG_HEARTBEAT_SENT && ev != OTRL_MSGEVENT_LOG_HEARTBEAT_RCVD)
            fprintf(stderr, "bench: unexpected message event %s\n", msgevent_name(ev));
        return;
    }
    printf("{\"ev\":\"msg_event\",\"event\":\"%s\",\"peer\":", msgevent_name(ev)); put_str(stdout, c ? c->username : "");
    printf(",\"msg\":"); put_hexs(stdout, message); printf(",\"err\":%u}\n", (unsigned)err);
}
static void cb_create_instag(void *opdata, const char *a, const char *p) {
    Endpoint *e = opdata;
    FILE *f = tmpfile();
    otrl_instag_generate_FILEp(e->us, f, a, p);
    fclose(f);
}

static OtrlMessageAppOps ops = {
    .policy = cb_policy, .create_privkey = cb_create_privkey, .is_logged_in = cb_is_logged_in,
    .inject_message = cb_inject, .update_context_list = cb_update_context_list,
    .new_fingerprint = cb_new_fingerprint, .write_fingerprints = cb_write_fingerprints,
    .gone_secure = cb_gone_secure, .gone_insecure = cb_gone_insecure, .still_secure = cb_still_secure,
    .max_message_size = cb_max_message_size, .account_name = cb_account_name,
    .account_name_free = cb_account_name_free, .received_symkey = cb_received_symkey,
    .otr_error_message = cb_otr_error_message, .otr_error_message_free = cb_otr_error_message_free,
    .resent_msg_prefix = NULL, .resent_msg_prefix_free = NULL,
    .handle_smp_event = cb_handle_smp_event, .handle_msg_event = cb_handle_msg_event,
    .create_instag = cb_create_instag, .convert_msg = NULL, .convert_free = NULL, .timer_control = NULL,
};

static void run_pending(Endpoint *e) {
    if (pending_abort_ctx) { ConnContext *c = pending_abort_ctx; pending_abort_ctx = NULL; otrl_message_abort_smp(e->us, &ops, e, c); }
    if (pending_respond_ctx) {
        ConnContext *c = pending_respond_ctx; pending_respond_ctx = NULL;
        otrl_message_respond_smp(e->us, &ops, e, c, e->auto_smp_secret, e->auto_smp_secret_len);
    }
}

static void init_libs(void) {
    /* Secure memory off: libotr's per-session gcrypt handles then live in the ordinary heap, so
     * 1,000 sessions neither exhaust the small mlock()ed pool nor hide from mallinfo2(). */
    gcry_check_version(NULL);
    gcry_control(GCRYCTL_DISABLE_SECMEM, 0);
    gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
    OTRL_INIT;
}

static void ep_init(Endpoint *e, const char *account, const char *protocol, int interactive) {
    memset(e, 0, sizeof *e);
    e->us = otrl_userstate_create();
    snprintf(e->account, sizeof e->account, "%s", account);
    snprintf(e->protocol, sizeof e->protocol, "%s", protocol);
    e->policy = OTRL_POLICY_ALLOW_V2 | OTRL_POLICY_ALLOW_V3 | OTRL_POLICY_WHITESPACE_START_AKE | OTRL_POLICY_ERROR_START_AKE;
    e->interactive = interactive;
}

static int parse_policy(const char *s, OtrlPolicy *out) {
    char *end; unsigned long v = strtoul(s, &end, 0);
    if (*s && !*end) { *out = (OtrlPolicy)v; return 0; }
    OtrlPolicy p = 0;
    char *dup = strdup(s), *save = NULL;
    for (char *t = strtok_r(dup, "|", &save); t; t = strtok_r(NULL, "|", &save)) {
        if (!strcmp(t, "V2")) p |= OTRL_POLICY_ALLOW_V2;
        else if (!strcmp(t, "V3")) p |= OTRL_POLICY_ALLOW_V3;
        else if (!strcmp(t, "REQUIRE")) p |= OTRL_POLICY_REQUIRE_ENCRYPTION;
        else if (!strcmp(t, "WS_TAG")) p |= OTRL_POLICY_SEND_WHITESPACE_TAG;
        else if (!strcmp(t, "WS_START")) p |= OTRL_POLICY_WHITESPACE_START_AKE;
        else if (!strcmp(t, "ERR_START")) p |= OTRL_POLICY_ERROR_START_AKE;
        else if (!strcmp(t, "NEVER")) p |= OTRL_POLICY_NEVER;
        else if (!strcmp(t, "MANUAL")) p |= OTRL_POLICY_MANUAL;
        else if (!strcmp(t, "OPPORTUNISTIC")) p |= OTRL_POLICY_OPPORTUNISTIC;
        else if (!strcmp(t, "ALWAYS")) p |= OTRL_POLICY_ALWAYS;
        else { free(dup); return -1; }
    }
    free(dup);
    *out = p;
    return 0;
}

static ConnContext *find_ctx(Endpoint *e, const char *peer, int add) {
    return otrl_context_find(e->us, peer, e->account, e->protocol, OTRL_INSTAG_BEST, add, NULL, NULL, NULL);
}

/* Send through libotr; returns the number of wire lines produced (injected or returned). */
static gcry_error_t ep_send(Endpoint *e, const char *peer, const char *text, OtrlTLV *tlvs) {
    char *newmsg = NULL;
    e->injects = 0;
    gcry_error_t err = otrl_message_sending(e->us, &ops, e, e->account, e->protocol, peer, OTRL_INSTAG_BEST,
        text, tlvs, &newmsg, OTRL_FRAGMENT_SEND_ALL, NULL, NULL, NULL);
    if (!err && e->injects == 0) {
        /* Nothing injected: libotr left the (possibly rewritten) message for us to send. */
        const char *wire = newmsg ? newmsg : text;
        cb_inject(e, e->account, e->protocol, peer, wire);
    }
    if (newmsg) otrl_message_free(newmsg);
    return err;
}

/* Receive through libotr; reports "received" or "ignored". Returns 1 if ignored. */
static int ep_recv(Endpoint *e, const char *peer, const char *wire) {
    char *newmsg = NULL; OtrlTLV *tlvs = NULL; ConnContext *ctx = NULL;
    int ignore = otrl_message_receiving(e->us, &ops, e, e->account, e->protocol, peer, wire, &newmsg, &tlvs, &ctx, NULL, NULL);
    if (e->interactive) {
        if (ignore) { printf("{\"ev\":\"ignored\",\"peer\":"); put_str(stdout, peer); printf("}\n"); }
        else {
            const char *text = newmsg ? newmsg : wire;
            printf("{\"ev\":\"received\",\"peer\":"); put_str(stdout, peer);
            printf(",\"text\":"); put_hexs(stdout, text); printf(",\"tlvs\":[");
            int first = 1;
            for (OtrlTLV *t = tlvs; t; t = t->next) { printf(first ? "%u" : ",%u", t->type); first = 0; }
            printf("],\"state\":\"%s\",\"otr\":%s}\n", ctx ? state_name(ctx->msgstate) : "plaintext",
                   newmsg ? "true" : "false");
        }
    } else if (!ignore) {
        e->received_count++;
        e->last_received_len = strlen(newmsg ? newmsg : wire);
    }
    if (newmsg) otrl_message_free(newmsg);
    if (tlvs) otrl_tlv_free(tlvs);
    run_pending(e);
    return ignore;
}

/* ---------- serve mode ---------- */

static void dump_dh_state(FILE *f, const char *who, ConnContext *c);

static void done(const char *cmd, int ok, const char *err) {
    printf("{\"ev\":\"done\",\"cmd\":"); put_str(stdout, cmd);
    printf(",\"ok\":%s", ok ? "true" : "false");
    if (err) { printf(",\"error\":"); put_str(stdout, err); }
    printf("}\n");
    fflush(stdout);
}

static void print_own_fp(Endpoint *e, const char *evname) {
    char human[OTRL_PRIVKEY_FPRINT_HUMAN_LEN]; unsigned char raw[20];
    if (!otrl_privkey_fingerprint(e->us, human, e->account, e->protocol)) { printf("{\"ev\":\"%s\",\"fp\":null}\n", evname); return; }
    otrl_privkey_fingerprint_raw(e->us, raw, e->account, e->protocol);
    OtrlInsTag *it = otrl_instag_find(e->us, e->account, e->protocol);
    printf("{\"ev\":\"%s\",\"fp\":", evname); put_str(stdout, human); printf(",\"fp_raw\":"); put_hex(stdout, raw, 20);
    printf(",\"instag\":%u}\n", it ? it->instag : 0);
}

static int serve(void) {
    Endpoint e; ep_init(&e, "alice", "irc", 1);
    char *line = NULL; size_t cap = 0; ssize_t n;
    printf("{\"ev\":\"ready\",\"libotr\":\"%s\"}\n", OTRL_VERSION); fflush(stdout);
    while ((n = getline(&line, &cap, stdin)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        char *f[8] = { 0 }; int nf = 0; char *p = line;
        while (nf < 8) { f[nf++] = p; char *t = strchr(p, '\t'); if (!t) break; *t = 0; p = t + 1; }
        const char *cmd = f[0];
        if (!*cmd) continue;
#define NEED(k) if (nf < (k) + 1) { done(cmd, 0, "missing argument"); continue; }
        if (!strcmp(cmd, "quit")) { done(cmd, 1, NULL); break; }
        else if (!strcmp(cmd, "account")) { NEED(2); snprintf(e.account, sizeof e.account, "%s", f[1]); snprintf(e.protocol, sizeof e.protocol, "%s", f[2]); done(cmd, 1, NULL); }
        else if (!strcmp(cmd, "genkey")) {
            NEED(2);
            gcry_error_t err = otrl_privkey_generate(e.us, f[1], e.account, e.protocol);
            if (!err) err = otrl_instag_generate(e.us, f[2], e.account, e.protocol);
            if (err) { done(cmd, 0, gcry_strerror(err)); continue; }
            print_own_fp(&e, "key"); done(cmd, 1, NULL);
        } else if (!strcmp(cmd, "loadkey")) {
            NEED(1);
            gcry_error_t err = otrl_privkey_read(e.us, f[1]);
            if (!err && !otrl_privkey_find(e.us, e.account, e.protocol)) { done(cmd, 0, "no key for this account in file"); continue; }
            if (!err) err = (nf > 2 && *f[2]) ? otrl_instag_read(e.us, f[2]) : 0;
            if (!err && !otrl_instag_find(e.us, e.account, e.protocol)) {
                FILE *t = tmpfile(); err = otrl_instag_generate_FILEp(e.us, t, e.account, e.protocol); fclose(t);
            }
            if (err) { done(cmd, 0, gcry_strerror(err)); continue; }
            print_own_fp(&e, "key"); done(cmd, 1, NULL);
        } else if (!strcmp(cmd, "fingerprint")) { print_own_fp(&e, "key"); done(cmd, 1, NULL); }
        else if (!strcmp(cmd, "policy")) {
            NEED(1);
            if (parse_policy(f[1], &e.policy)) { done(cmd, 0, "bad policy"); continue; }
            printf("{\"ev\":\"policy\",\"value\":%u}\n", e.policy); done(cmd, 1, NULL);
        } else if (!strcmp(cmd, "mms")) { NEED(1); e.mms = atoi(f[1]); done(cmd, 1, NULL); }
        else if (!strcmp(cmd, "send")) {
            NEED(2);
            unsigned char *msg; size_t len;
            if (unhex(f[2], &msg, &len)) { done(cmd, 0, "bad hex"); continue; }
            gcry_error_t err = ep_send(&e, f[1], (char *)msg, NULL);
            free(msg);
            run_pending(&e);
            done(cmd, !err, err ? gcry_strerror(err) : NULL);
        } else if (!strcmp(cmd, "recv")) {
            NEED(2);
            unsigned char *msg; size_t len;
            if (unhex(f[2], &msg, &len)) { done(cmd, 0, "bad hex"); continue; }
            ep_recv(&e, f[1], (char *)msg);
            free(msg);
            done(cmd, 1, NULL);
        } else if (!strcmp(cmd, "smp_start") || !strcmp(cmd, "smp_respond")) {
            NEED(2);
            ConnContext *c = find_ctx(&e, f[1], 0);
            if (!c) { done(cmd, 0, "no context"); continue; }
            unsigned char *sec; size_t slen;
            if (unhex(f[2], &sec, &slen)) { done(cmd, 0, "bad hex"); continue; }
            if (!strcmp(cmd, "smp_respond")) otrl_message_respond_smp(e.us, &ops, &e, c, sec, slen);
            else if (nf > 3 && *f[3]) {
                unsigned char *q; size_t qlen;
                if (unhex(f[3], &q, &qlen)) { free(sec); done(cmd, 0, "bad hex"); continue; }
                otrl_message_initiate_smp_q(e.us, &ops, &e, c, (char *)q, sec, slen);
                free(q);
            } else otrl_message_initiate_smp(e.us, &ops, &e, c, sec, slen);
            free(sec);
            run_pending(&e);
            done(cmd, 1, NULL);
        } else if (!strcmp(cmd, "smp_abort")) {
            NEED(1);
            ConnContext *c = find_ctx(&e, f[1], 0);
            if (!c) { done(cmd, 0, "no context"); continue; }
            otrl_message_abort_smp(e.us, &ops, &e, c);
            done(cmd, 1, NULL);
        } else if (!strcmp(cmd, "symkey")) {
            NEED(3);
            ConnContext *c = find_ctx(&e, f[1], 0);
            if (!c) { done(cmd, 0, "no context"); continue; }
            unsigned char *ud; size_t udlen; unsigned char key[OTRL_EXTRAKEY_BYTES];
            if (unhex(f[3], &ud, &udlen)) { done(cmd, 0, "bad hex"); continue; }
            gcry_error_t err = otrl_message_symkey(e.us, &ops, &e, c, (unsigned)strtoul(f[2], NULL, 0), ud, udlen, key);
            free(ud);
            if (err) { done(cmd, 0, gcry_strerror(err)); continue; }
            printf("{\"ev\":\"our_symkey\",\"key\":"); put_hex(stdout, key, sizeof key); printf("}\n");
            done(cmd, 1, NULL);
        } else if (!strcmp(cmd, "disconnect")) {
            NEED(1);
            ConnContext *c = find_ctx(&e, f[1], 0);
            otrl_message_disconnect(e.us, &ops, &e, e.account, e.protocol, f[1], c ? c->their_instance : OTRL_INSTAG_BEST);
            done(cmd, 1, NULL);
        } else if (!strcmp(cmd, "status")) {
            NEED(1);
            ConnContext *c = find_ctx(&e, f[1], 0);
            if (!c) printf("{\"ev\":\"status\",\"state\":\"none\"}\n");
            else {
                printf("{\"ev\":\"status\",\"state\":\"%s\",\"version\":%u,\"their_instance\":%u,\"our_instance\":%u,\"ssid\":",
                    state_name(c->msgstate), c->protocol_version, c->their_instance, c->our_instance);
                put_hex(stdout, c->sessionid, c->sessionid_len);
                printf(",\"fp_raw\":");
                if (c->active_fingerprint && c->active_fingerprint->fingerprint) put_hex(stdout, c->active_fingerprint->fingerprint, 20);
                else printf("null");
                printf(",\"smp_state\":%d}\n", c->smstate ? (int)c->smstate->nextExpected : -1);
            }
            done(cmd, 1, NULL);
        } else if (!strcmp(cmd, "dhstate")) {
            NEED(1);
            ConnContext *c = find_ctx(&e, f[1], 0);
            if (!c || c->msgstate != OTRL_MSGSTATE_ENCRYPTED) { done(cmd, 0, "not encrypted"); continue; }
            printf("{\"ev\":\"dhstate\",");
            dump_dh_state(stdout, "state", c);
            printf("}\n");
            done(cmd, 1, NULL);
        } else if (!strcmp(cmd, "writefps")) {
            NEED(1);
            gcry_error_t err = otrl_privkey_write_fingerprints(e.us, f[1]);
            done(cmd, !err, err ? gcry_strerror(err) : NULL);
        } else if (!strcmp(cmd, "readfps")) {
            NEED(1);
            gcry_error_t err = otrl_privkey_read_fingerprints(e.us, f[1], NULL, NULL);
            if (err) { done(cmd, 0, gcry_strerror(err)); continue; }
            for (ConnContext *c = e.us->context_root; c; c = c->next) {
                if (c->m_context != c) continue;
                for (Fingerprint *fp = c->fingerprint_root.next; fp; fp = fp->next) {
                    printf("{\"ev\":\"fpentry\",\"peer\":"); put_hexs(stdout, c->username);
                    printf(",\"account\":"); put_hexs(stdout, c->accountname);
                    printf(",\"protocol\":"); put_hexs(stdout, c->protocol);
                    printf(",\"fp_raw\":"); put_hex(stdout, fp->fingerprint, 20);
                    printf(",\"trust\":"); put_hexs(stdout, fp->trust ? fp->trust : "");
                    printf("}\n");
                }
            }
            done(cmd, 1, NULL);
        } else if (!strcmp(cmd, "settrust")) {
            NEED(3);
            unsigned char *raw; size_t len;
            if (unhex(f[2], &raw, &len) || len != 20) { done(cmd, 0, "bad fingerprint"); continue; }
            ConnContext *c = otrl_context_find(e.us, f[1], e.account, e.protocol, OTRL_INSTAG_MASTER, 0, NULL, NULL, NULL);
            Fingerprint *fp = c ? otrl_context_find_fingerprint(c, raw, 0, NULL) : NULL;
            free(raw);
            if (!fp) { done(cmd, 0, "unknown fingerprint"); continue; }
            otrl_context_set_trust(fp, f[3]);
            done(cmd, 1, NULL);
        } else if (!strcmp(cmd, "verify")) {
            NEED(6);
            gcry_mpi_t m[4] = { 0 }; gcry_sexp_t pubs = NULL;
            unsigned char *data, *sig; size_t dlen, slen;
            int bad = 0;
            for (int i = 0; i < 4; i++) if (gcry_mpi_scan(&m[i], GCRYMPI_FMT_HEX, f[1 + i], 0, NULL)) bad = 1;
            if (bad || unhex(f[5], &data, &dlen)) { done(cmd, 0, "bad hex"); continue; }
            if (unhex(f[6], &sig, &slen)) { free(data); done(cmd, 0, "bad hex"); continue; }
            gcry_sexp_build(&pubs, NULL, "(public-key (dsa (p %m)(q %m)(g %m)(y %m)))", m[0], m[1], m[2], m[3]);
            gcry_error_t err = otrl_privkey_verify(sig, slen, OTRL_PUBKEY_TYPE_DSA, pubs, data, dlen);
            printf("{\"ev\":\"verify\",\"valid\":%s}\n", err ? "false" : "true");
            gcry_sexp_release(pubs); for (int i = 0; i < 4; i++) gcry_mpi_release(m[i]);
            free(data); free(sig);
            done(cmd, 1, NULL);
        } else if (!strcmp(cmd, "forget")) {
            NEED(1);
            /* children (instance contexts) first, then the master, so no list link dangles */
            for (int pass = 0; pass < 2; pass++) {
                for (ConnContext *c = e.us->context_root, *next; c; c = next) {
                    next = c->next;
                    if (strcmp(c->username, f[1]) || strcmp(c->accountname, e.account) || strcmp(c->protocol, e.protocol)) continue;
                    if ((pass == 0) == (c->m_context == c)) continue;
                    otrl_context_force_plaintext(c);
                    otrl_context_forget(c);
                }
            }
            done(cmd, 1, NULL);
        } else if (!strcmp(cmd, "poll")) { otrl_message_poll(e.us, &ops, &e); done(cmd, 1, NULL); }
        else done(cmd, 0, "unknown command");
        fflush(stdout);
    }
    free(line);
    otrl_userstate_free(e.us);
    return 0;
}

/* ---------- key file utilities ---------- */

static int cmd_fingerprint(const char *file) {
    OtrlUserState us = otrl_userstate_create();
    gcry_error_t err = otrl_privkey_read(us, file);
    if (err) { fprintf(stderr, "read %s: %s\n", file, gcry_strerror(err)); return 1; }
    int n = 0;
    for (OtrlPrivKey *k = us->privkey_root; k; k = k->next, n++) {
        char human[OTRL_PRIVKEY_FPRINT_HUMAN_LEN]; unsigned char raw[20];
        otrl_privkey_fingerprint(us, human, k->accountname, k->protocol);
        otrl_privkey_fingerprint_raw(us, raw, k->accountname, k->protocol);
        printf("{\"account\":"); put_str(stdout, k->accountname); printf(",\"protocol\":"); put_str(stdout, k->protocol);
        printf(",\"fp\":"); put_str(stdout, human); printf(",\"fp_raw\":"); put_hex(stdout, raw, 20); printf("}\n");
    }
    otrl_userstate_free(us);
    return n ? 0 : 1;
}

static int cmd_genkey(const char *file, const char *account, const char *protocol) {
    OtrlUserState us = otrl_userstate_create();
    gcry_error_t err = otrl_privkey_generate(us, file, account, protocol);
    if (err) { fprintf(stderr, "genkey: %s\n", gcry_strerror(err)); return 1; }
    otrl_userstate_free(us);
    return cmd_fingerprint(file);
}

/* ---------- bench mode ---------- */

static Endpoint A, B;
static const char *PEER_NAME_FOR_A = "bob_0", *PEER_NAME_FOR_B = "alice_0";

static int pump(void) {
    int n = 0;
    while (qhead < qtail) {
        QItem it = queue[qhead++];
        ep_recv(it.to, it.sender, it.msg);
        free(it.sender); free(it.msg);
        n++;
    }
    qhead = qtail = 0;
    return n;
}

static void bench_setup(const char *dir) {
    char ka[512], kb[512];
    snprintf(ka, sizeof ka, "%s/alice.key", dir); snprintf(kb, sizeof kb, "%s/bob.key", dir);
    ep_init(&A, "alice", "irc", 0); ep_init(&B, "bob", "irc", 0);
    A.other = &B; B.other = &A;
    FILE *t;
    if (otrl_privkey_read(A.us, ka) || !otrl_privkey_find(A.us, "alice", "irc")) otrl_privkey_generate(A.us, ka, "alice", "irc");
    if (otrl_privkey_read(B.us, kb) || !otrl_privkey_find(B.us, "bob", "irc")) otrl_privkey_generate(B.us, kb, "bob", "irc");
    t = tmpfile(); otrl_instag_generate_FILEp(A.us, t, "alice", "irc"); fclose(t);
    t = tmpfile(); otrl_instag_generate_FILEp(B.us, t, "bob", "irc"); fclose(t);
}

/* One AKE between alice and bob under the given peer names: alice sends a query, bob answers. */
static int bench_ake(const char *peer_of_a) {
    int before_a = A.secure_count, before_b = B.secure_count;
    char sender[160]; peer_swap(peer_of_a, sender, sizeof sender);
    q_push(&B, sender, "?OTRv3?");
    pump();
    return A.secure_count == before_a + 1 && B.secure_count == before_b + 1;
}

static double bench_keygen(int n) {
    double total = 0;
    for (int i = 0; i < n; i++) {
        OtrlUserState us = otrl_userstate_create();
        FILE *f = tmpfile();
        double t0 = now_s();
        otrl_privkey_generate_FILEp(us, f, "k", "irc");
        total += now_s() - t0;
        fclose(f);
        otrl_userstate_free(us);
    }
    return total / n * 1000.0;
}

static double bench_ake_rate(double seconds) {
    int n = 0; double t0 = now_s(), t;
    do {
        if (!bench_ake(PEER_NAME_FOR_A)) { fprintf(stderr, "bench: AKE failed\n"); exit(2); }
        otrl_context_forget_all(A.us); otrl_context_forget_all(B.us);
        n++;
    } while ((t = now_s() - t0) < seconds);
    return n / t;
}

static double bench_data_rate(double seconds) {
    if (!bench_ake(PEER_NAME_FOR_A)) { fprintf(stderr, "bench: AKE failed\n"); exit(2); }
    char msg[201]; memset(msg, 'x', 200); msg[200] = 0;
    int n = 0; double t0 = now_s(), t;
    do {
        int rb = B.received_count;
        ep_send(&A, PEER_NAME_FOR_A, msg, NULL); pump();
        int ra = A.received_count;
        ep_send(&B, PEER_NAME_FOR_B, msg, NULL); pump();
        if (B.received_count != rb + 1 || A.received_count != ra + 1 || A.last_received_len != 200) {
            fprintf(stderr, "bench: data message lost\n"); exit(2);
        }
        n += 2;
    } while ((t = now_s() - t0) < seconds);
    otrl_context_forget_all(A.us); otrl_context_forget_all(B.us);
    return n / t;
}

static double bench_smp_rate(double seconds) {
    if (!bench_ake(PEER_NAME_FOR_A)) { fprintf(stderr, "bench: AKE failed\n"); exit(2); }
    static const unsigned char secret[] = "correct horse battery staple";
    B.auto_smp_secret = secret; B.auto_smp_secret_len = sizeof secret - 1;
    int n = 0; double t0 = now_s(), t;
    do {
        int sa = A.smp_success, sb = B.smp_success;
        ConnContext *c = find_ctx(&A, PEER_NAME_FOR_A, 0);
        otrl_message_initiate_smp(A.us, &ops, &A, c, secret, sizeof secret - 1);
        pump();
        if (A.smp_success != sa + 1 || B.smp_success != sb + 1) { fprintf(stderr, "bench: SMP failed\n"); exit(2); }
        n++;
    } while ((t = now_s() - t0) < seconds);
    B.auto_smp_secret = NULL;
    otrl_context_forget_all(A.us); otrl_context_forget_all(B.us);
    return n / t;
}

static double bench_mem(int sessions) {
    otrl_context_forget_all(A.us); otrl_context_forget_all(B.us);
    malloc_trim(0);
    struct mallinfo2 m0 = mallinfo2();
    char name[64];
    for (int i = 0; i < sessions; i++) {
        snprintf(name, sizeof name, "bob_%d", i + 1);
        if (!bench_ake(name)) { fprintf(stderr, "bench: AKE failed\n"); exit(2); }
    }
    struct mallinfo2 m1 = mallinfo2();
    double per = ((double)m1.uordblks - (double)m0.uordblks) / sessions;
    otrl_context_forget_all(A.us); otrl_context_forget_all(B.us);
    return per; /* bytes per established session, both endpoints' state included */
}

static int bench(int argc, char **argv) {
    double secs = getenv("OTR_BENCH_SECONDS") ? atof(getenv("OTR_BENCH_SECONDS")) : 3.0;
    const char *dir = getenv("OTR_BENCH_KEYDIR") ? getenv("OTR_BENCH_KEYDIR") : "/tmp";
    int all = argc < 3;
    int want[5] = { all, all, all, all, all };
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "keygen")) want[0] = 1; else if (!strcmp(argv[i], "ake")) want[1] = 1;
        else if (!strcmp(argv[i], "data")) want[2] = 1; else if (!strcmp(argv[i], "smp")) want[3] = 1;
        else if (!strcmp(argv[i], "mem")) want[4] = 1;
    }
    bench_setup(dir);
    printf("{\"libotr\":\"%s\"", OTRL_VERSION);
    if (want[0]) printf(",\"keygen_ms\":%.2f", bench_keygen(getenv("OTR_BENCH_KEYGENS") ? atoi(getenv("OTR_BENCH_KEYGENS")) : 10));
    if (want[1]) printf(",\"ake_per_s\":%.2f", bench_ake_rate(secs));
    if (want[2]) printf(",\"data_msgs_per_s\":%.2f", bench_data_rate(secs));
    if (want[3]) printf(",\"smp_per_s\":%.2f", bench_smp_rate(secs));
    if (want[4]) {
        int n = getenv("OTR_BENCH_SESSIONS") ? atoi(getenv("OTR_BENCH_SESSIONS")) : 1000;
        double pair = bench_mem(n);
        printf(",\"bytes_per_session_pair\":%.0f,\"bytes_per_session\":%.0f,\"sessions\":%d", pair, pair / 2, n);
    }
    printf("}\n");
    return 0;
}

/* ---------- vector mode ---------- */

static const char *MODP1536 =
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF";

static char today[32];
static void provenance(FILE *f, const char *what) {
    fprintf(f, "  \"provenance\": \"%s; generated by `make -C test/libotr-helper vectors` (otr-helper vectors test/vectors) "
               "from libotr %s (Debian libotr5-dev) with libgcrypt %s on %s\",\n", what, OTRL_VERSION, gcry_check_version(NULL), today);
}

static void put_sexp_mpi(FILE *f, gcry_sexp_t key, const char *name) {
    gcry_sexp_t t = gcry_sexp_find_token(key, name, 0);
    gcry_mpi_t m = gcry_sexp_nth_mpi(t, 1, GCRYMPI_FMT_USG);
    put_mpi(f, m);
    gcry_mpi_release(m); gcry_sexp_release(t);
}

static gcry_mpi_t mpi_from_hex(const char *hex) { gcry_mpi_t m = NULL; gcry_mpi_scan(&m, GCRYMPI_FMT_HEX, hex, 0, NULL); return m; }
static gcry_mpi_t mpi_random_bits(int bits) {
    gcry_mpi_t m = gcry_mpi_new(bits);
    gcry_mpi_randomize(m, bits, GCRY_STRONG_RANDOM);
    return m;
}
/* The private key read back as text so the vector carries libotr's own S-expression file. */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb"); if (!f) return NULL;
    fseek(f, 0, SEEK_END); long n = ftell(f); fseek(f, 0, SEEK_SET);
    char *b = malloc(n + 1); n = fread(b, 1, n, f); b[n] = 0; fclose(f); return b;
}

static void vectors_dsa(const char *outdir, int nkeys) {
    char path[1024]; snprintf(path, sizeof path, "%s/libotr-dsa.json", outdir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\n");
    provenance(f, "DSA-1024 keys made by otrl_privkey_generate, fingerprints by otrl_privkey_fingerprint[_raw], "
                  "pubkey_data is libotr's OtrlPrivKey.pubkey_data (MPIs p, q, g, y without the 2-byte type), "
                  "signatures by otrl_privkey_sign over 32-byte values (r||s, 20 bytes each), each checked with otrl_privkey_verify");
    fprintf(f, "  \"keys\": [\n");
    for (int i = 0; i < nkeys; i++) {
        char kpath[1024]; snprintf(kpath, sizeof kpath, "%s/.dsa-key-%d.tmp", outdir, i);
        char acct[32]; snprintf(acct, sizeof acct, "vector%d@example.org", i);
        OtrlUserState us = otrl_userstate_create();
        otrl_privkey_generate(us, kpath, acct, "prpl-irc");
        OtrlPrivKey *k = otrl_privkey_find(us, acct, "prpl-irc");
        char human[OTRL_PRIVKEY_FPRINT_HUMAN_LEN]; unsigned char raw[20];
        otrl_privkey_fingerprint(us, human, acct, "prpl-irc");
        otrl_privkey_fingerprint_raw(us, raw, acct, "prpl-irc");
        fprintf(f, "    {\n      \"account\": \"%s\", \"protocol\": \"prpl-irc\",\n", acct);
        const char *names[] = { "p", "q", "g", "y", "x" };
        for (int j = 0; j < 5; j++) { fprintf(f, "      \"%s\": ", names[j]); put_sexp_mpi(f, k->privkey, names[j]); fprintf(f, ",\n"); }
        fprintf(f, "      \"pubkey_data\": "); put_hex(f, k->pubkey_data, k->pubkey_datalen); fprintf(f, ",\n");
        fprintf(f, "      \"fingerprint_raw\": "); put_hex(f, raw, 20); fprintf(f, ",\n");
        fprintf(f, "      \"fingerprint\": \"%s\",\n", human);
        char *file = slurp(kpath);
        fprintf(f, "      \"libotr_key_file\": "); put_hexs(f, file); fprintf(f, ",\n");
        free(file); remove(kpath);
        /* public key S-expression for otrl_privkey_verify */
        gcry_sexp_t pubs;
        gcry_sexp_t tp = gcry_sexp_find_token(k->privkey, "p", 0), tq = gcry_sexp_find_token(k->privkey, "q", 0),
                    tg = gcry_sexp_find_token(k->privkey, "g", 0), ty = gcry_sexp_find_token(k->privkey, "y", 0);
        gcry_mpi_t p = gcry_sexp_nth_mpi(tp, 1, GCRYMPI_FMT_USG), q = gcry_sexp_nth_mpi(tq, 1, GCRYMPI_FMT_USG),
                   g = gcry_sexp_nth_mpi(tg, 1, GCRYMPI_FMT_USG), y = gcry_sexp_nth_mpi(ty, 1, GCRYMPI_FMT_USG);
        gcry_sexp_build(&pubs, NULL, "(public-key (dsa (p %m)(q %m)(g %m)(y %m)))", p, q, g, y);
        fprintf(f, "      \"signatures\": [\n");
        for (int s = 0; s < 4; s++) {
            unsigned char data[32];
            /* s = 0: all 0xff, a value far above q, which exercises the "mod q" rule of the errata;
             * s = 1: leading zero bytes; others random. */
            if (s == 0) memset(data, 0xff, 32);
            else { gcry_randomize(data, 32, GCRY_STRONG_RANDOM); if (s == 1) { data[0] = data[1] = 0; } }
            unsigned char *sig; size_t siglen;
            otrl_privkey_sign(&sig, &siglen, k, data, 32);
            gcry_error_t v = otrl_privkey_verify(sig, siglen, OTRL_PUBKEY_TYPE_DSA, pubs, data, 32);
            if (v) { fprintf(stderr, "vectors: libotr rejects its own signature\n"); exit(2); }
            fprintf(f, "        { \"data\": "); put_hex(f, data, 32); fprintf(f, ", \"sig\": "); put_hex(f, sig, siglen);
            fprintf(f, " }%s\n", s < 3 ? "," : "");
            free(sig);
        }
        fprintf(f, "      ]\n    }%s\n", i < nkeys - 1 ? "," : "");
        gcry_sexp_release(pubs); gcry_sexp_release(tp); gcry_sexp_release(tq); gcry_sexp_release(tg); gcry_sexp_release(ty);
        gcry_mpi_release(p); gcry_mpi_release(q); gcry_mpi_release(g); gcry_mpi_release(y);
        otrl_userstate_free(us);
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
}

/* Random 320-bit x, y until the case exercises a leading-zero bug seen in other implementations:
 * want 1: s = g^xy mod p is shorter than 192 bytes (its MPI must stay minimal; otr.js, python-potr);
 * want 2: the sending AES key h1(sendbyte, s)[0..16) starts with a zero byte (python-potr dropped it). */
static void find_case(gcry_mpi_t *xp, gcry_mpi_t *yp, int want) {
    gcry_mpi_t p = mpi_from_hex(MODP1536), g = gcry_mpi_set_ui(NULL, 2);
    for (;;) {
        gcry_mpi_t x = mpi_random_bits(320), y = mpi_random_bits(320);
        gcry_mpi_t gx = gcry_mpi_new(1536), gy = gcry_mpi_new(1536), s = gcry_mpi_new(1536);
        gcry_mpi_powm(gx, g, x, p); gcry_mpi_powm(gy, g, y, p); gcry_mpi_powm(s, gy, x, p);
        unsigned char buf[1 + 4 + 192]; size_t n = 0;
        gcry_mpi_print(GCRYMPI_FMT_USG, buf + 5, 192, &n, s);
        int ok;
        if (want == 1) ok = n < 192;
        else {
            buf[0] = gcry_mpi_cmp(gx, gy) > 0 ? 0x01 : 0x02;
            buf[1] = n >> 24; buf[2] = n >> 16; buf[3] = n >> 8; buf[4] = n;
            unsigned char h[20]; gcry_md_hash_buffer(GCRY_MD_SHA1, h, buf, 5 + n);
            ok = h[0] == 0;
        }
        gcry_mpi_release(gx); gcry_mpi_release(gy); gcry_mpi_release(s);
        if (ok) { *xp = x; *yp = y; break; }
        gcry_mpi_release(x); gcry_mpi_release(y);
    }
    gcry_mpi_release(p); gcry_mpi_release(g);
}

static void dh_fixed(DH_keypair *kp, gcry_mpi_t priv) {
    gcry_mpi_t p = mpi_from_hex(MODP1536), g = gcry_mpi_set_ui(NULL, 2);
    otrl_dh_keypair_init(kp);
    kp->groupid = DH1536_GROUP_ID;
    kp->priv = priv;
    kp->pub = gcry_mpi_new(1536);
    gcry_mpi_powm(kp->pub, g, priv, p);
    gcry_mpi_release(p); gcry_mpi_release(g);
}

/* Probes: AES keys and MAC keys live inside gcrypt handles, so we publish what they compute:
 * AES-CTR over 32 zero bytes from a given counter, and HMAC over a fixed message. */
static const char PROBE_MSG[] = "matrix-otr-irc probe";
static void put_cipher_probe(FILE *f, gcry_cipher_hd_t h, const unsigned char ctr[16]) {
    unsigned char zeros[32] = { 0 }, out[32];
    gcry_cipher_reset(h);
    gcry_cipher_setctr(h, ctr, 16);
    gcry_cipher_encrypt(h, out, 32, zeros, 32);
    put_hex(f, out, 32);
}
static void put_md_probe(FILE *f, gcry_md_hd_t h) {
    gcry_md_reset(h);
    gcry_md_write(h, PROBE_MSG, strlen(PROBE_MSG));
    unsigned char *r = gcry_md_read(h, 0);
    put_hex(f, r, gcry_md_get_algo_dlen(gcry_md_get_algo(h)));
}

static void vectors_kdf(const char *outdir, int n) {
    char path[1024]; snprintf(path, sizeof path, "%s/libotr-kdf.json", outdir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\n");
    provenance(f, "AKE keys from otrl_dh_compute_v2_auth_keys and data-message keys from otrl_dh_session, for DH private keys "
                  "x (ours) and y (theirs), public keys g^x and g^y in the RFC 3526 1536-bit group. AES keys and MAC keys that libotr "
                  "keeps inside gcrypt handles are given as probes: *_probe = AES-128-CTR encryption of 32 zero bytes starting at "
                  "the counter block in probe_ctr, *_hmac_probe = HMAC (SHA-256 for m1..m2', SHA-1 for data MAC keys) of the ASCII "
                  "string in probe_msg. Case 0 uses tiny exponents, case 1 a shared secret with a leading zero byte, case 2 a "
                  "sending AES key with a leading zero byte, the rest random");
    fprintf(f, "  \"probe_msg\": \"%s\",\n", PROBE_MSG);
    unsigned char ctr_zero[16] = { 0 };
    unsigned char ctr_data[16] = { 0, 0, 0, 0, 0, 0, 0, 1 };
    fprintf(f, "  \"probe_ctr_ake\": "); put_hex(f, ctr_zero, 16); fprintf(f, ",\n");
    fprintf(f, "  \"probe_ctr_data\": "); put_hex(f, ctr_data, 16); fprintf(f, ",\n");
    fprintf(f, "  \"cases\": [\n");
    for (int i = 0; i < n; i++) {
        DH_keypair ours, theirs;
        gcry_mpi_t x, y;
        if (i == 0) { x = gcry_mpi_set_ui(NULL, 3); y = gcry_mpi_set_ui(NULL, 5); }
        else if (i == 1) find_case(&x, &y, 1);   /* shared secret with a leading zero byte */
        else if (i == 2) find_case(&x, &y, 2);   /* sending AES key with a leading zero byte */
        else { x = mpi_random_bits(320); y = mpi_random_bits(320); }
        dh_fixed(&ours, x); dh_fixed(&theirs, y);
        fprintf(f, "    {\n      \"x\": "); put_mpi(f, ours.priv); fprintf(f, ",\n      \"gx\": "); put_mpi(f, ours.pub);
        fprintf(f, ",\n      \"y\": "); put_mpi(f, theirs.priv); fprintf(f, ",\n      \"gy\": "); put_mpi(f, theirs.pub);
        /* the shared secret itself, for reference */
        gcry_mpi_t p = mpi_from_hex(MODP1536), s = gcry_mpi_new(1536);
        gcry_mpi_powm(s, theirs.pub, ours.priv, p);
        fprintf(f, ",\n      \"s\": "); put_mpi(f, s);
        gcry_mpi_release(p); gcry_mpi_release(s);

        unsigned char ssid[8]; size_t ssidlen = sizeof ssid;
        gcry_cipher_hd_t c, cp; gcry_md_hd_t m1, m1p, m2, m2p;
        otrl_dh_compute_v2_auth_keys(&ours, theirs.pub, ssid, &ssidlen, &c, &cp, &m1, &m1p, &m2, &m2p);
        fprintf(f, ",\n      \"ake\": {\n        \"ssid\": "); put_hex(f, ssid, ssidlen);
        fprintf(f, ",\n        \"c_probe\": "); put_cipher_probe(f, c, ctr_zero);
        fprintf(f, ",\n        \"cp_probe\": "); put_cipher_probe(f, cp, ctr_zero);
        fprintf(f, ",\n        \"m1_hmac_probe\": "); put_md_probe(f, m1);
        fprintf(f, ",\n        \"m2_hmac_probe\": "); put_md_probe(f, m2);
        fprintf(f, ",\n        \"m1p_hmac_probe\": "); put_md_probe(f, m1p);
        fprintf(f, ",\n        \"m2p_hmac_probe\": "); put_md_probe(f, m2p);
        fprintf(f, "\n      }");
        gcry_cipher_close(c); gcry_cipher_close(cp);
        gcry_md_close(m1); gcry_md_close(m1p); gcry_md_close(m2); gcry_md_close(m2p);

        DH_sesskeys sess;
        otrl_dh_session_blank(&sess);
        otrl_dh_session(&sess, &ours, theirs.pub);
        fprintf(f, ",\n      \"data\": {\n        \"sendctr_init\": "); put_hex(f, sess.sendctr, 16);
        fprintf(f, ",\n        \"rcvctr_init\": "); put_hex(f, sess.rcvctr, 16);
        fprintf(f, ",\n        \"send_aes_probe\": "); put_cipher_probe(f, sess.sendenc, ctr_data);
        fprintf(f, ",\n        \"rcv_aes_probe\": "); put_cipher_probe(f, sess.rcvenc, ctr_data);
        fprintf(f, ",\n        \"send_mac_key\": "); put_hex(f, sess.sendmackey, 20);
        fprintf(f, ",\n        \"rcv_mac_key\": "); put_hex(f, sess.rcvmackey, 20);
        fprintf(f, ",\n        \"send_mac_hmac_probe\": "); put_md_probe(f, sess.sendmac);
        fprintf(f, ",\n        \"extra_key\": "); put_hex(f, sess.extrakey, OTRL_EXTRAKEY_BYTES);
        fprintf(f, "\n      }\n    }%s\n", i < n - 1 ? "," : "");
        otrl_dh_session_free(&sess);
        otrl_dh_keypair_free(&ours); otrl_dh_keypair_free(&theirs);
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
}

/* A real libotr conversation (alice <-> bob in one process), with the DH private keys dumped so a
 * test can recompute every key and check MACs, decrypt, and verify counters and key ids. */
static FILE *capture; static int capture_first;
static void capture_inject(void *opdata, const char *a, const char *p, const char *recipient, const char *message) {
    Endpoint *e = opdata; (void)a; (void)p;
    if (capture) {
        fprintf(capture, "%s      { \"from\": \"%s\", \"wire\": ", capture_first ? "" : ",\n", e->account);
        put_hexs(capture, message); fprintf(capture, " }");
        capture_first = 0;
    }
    e->injects++;
    char sender[160]; peer_swap(recipient, sender, sizeof sender);
    q_push(e->other, sender, message);
}
static void dump_dh_state(FILE *f, const char *who, ConnContext *c) {
    ConnContextPriv *cp = c->context_priv;
    fprintf(f, "      \"%s\": { \"our_keyid\": %u, \"our_x\": ", who, cp->our_keyid); put_mpi(f, cp->our_dh_key.priv);
    fprintf(f, ", \"our_old_x\": "); if (cp->our_old_dh_key.priv) put_mpi(f, cp->our_old_dh_key.priv); else fprintf(f, "null");
    fprintf(f, ", \"their_keyid\": %u, \"their_y\": ", cp->their_keyid); put_mpi(f, cp->their_y);
    fprintf(f, ", \"their_old_y\": "); if (cp->their_old_y) put_mpi(f, cp->their_old_y); else fprintf(f, "null");
    fprintf(f, ", \"instance\": %u, \"ssid\": ", c->our_instance); put_hex(f, c->sessionid, c->sessionid_len); fprintf(f, " }");
}
static void vectors_data(const char *outdir) {
    char path[1024]; snprintf(path, sizeof path, "%s/libotr-data.json", outdir);
    FILE *f = fopen(path, "w");
    ep_init(&A, "alice", "irc", 0); ep_init(&B, "bob", "irc", 0);
    A.other = &B; B.other = &A;
    FILE *t;
    t = tmpfile(); otrl_privkey_generate_FILEp(A.us, t, "alice", "irc"); fclose(t);
    t = tmpfile(); otrl_privkey_generate_FILEp(B.us, t, "bob", "irc"); fclose(t);
    t = tmpfile(); otrl_instag_generate_FILEp(A.us, t, "alice", "irc"); fclose(t);
    t = tmpfile(); otrl_instag_generate_FILEp(B.us, t, "bob", "irc"); fclose(t);
    ops.inject_message = capture_inject;
    if (!bench_ake(PEER_NAME_FOR_A)) { fprintf(stderr, "vectors: AKE failed\n"); exit(2); }
    fprintf(f, "{\n");
    provenance(f, "data messages from a real libotr v3 conversation (alice and bob in one process, after an AKE). Each step "
                  "gives the sender's DH state *before* sending (our_x for key id our_keyid, our_old_x for our_keyid-1, their_y "
                  "for their_keyid, their_old_y for their_keyid-1) and the wire lines libotr injected (hex of the ASCII line). "
                  "libotr sends with sender key id our_keyid-1 and recipient key id their_keyid; plaintext is the hex of the "
                  "message text; tlvs lists TLVs that libotr attached");
    fprintf(f, "  \"steps\": [\n");
    const char *texts[] = { "hello", "a somewhat longer message, so that the ciphertext spans several AES blocks: 0123456789abcdef", "\xc3\xa9t\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x94\x90", "reply from bob", "third", "x" };
    Endpoint *senders[] = { &A, &A, &B, &B, &A, &B };
    for (int i = 0; i < 6; i++) {
        Endpoint *s = senders[i];
        const char *peer = s == &A ? PEER_NAME_FOR_A : PEER_NAME_FOR_B;
        ConnContext *c = find_ctx(s, peer, 0);
        fprintf(f, "    {\n");
        dump_dh_state(f, "sender_state", c);
        fprintf(f, ",\n      \"from\": \"%s\", \"plaintext\": ", s->account); put_hexs(f, texts[i]);
        fprintf(f, ",\n      \"wire\": [\n");
        capture = f; capture_first = 1;
        ep_send(s, peer, texts[i], NULL);
        capture = NULL;
        fprintf(f, "\n      ]\n    }%s\n", i < 5 ? "," : "");
        int before = s->other->received_count;
        pump();
        if (s->other->received_count != before + 1) { fprintf(stderr, "vectors: data message not received\n"); exit(2); }
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
    ops.inject_message = cb_inject;
}

static int vectors(const char *outdir) {
    time_t t = time(NULL); strftime(today, sizeof today, "%Y-%m-%d", gmtime(&t));
    vectors_dsa(outdir, 3);
    vectors_kdf(outdir, 5);
    vectors_data(outdir);
    return 0;
}

int main(int argc, char **argv) {
    init_libs();
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    if (argc >= 2 && !strcmp(argv[1], "bench")) return bench(argc, argv);
    if (argc >= 3 && !strcmp(argv[1], "vectors")) return vectors(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "fingerprint")) return cmd_fingerprint(argv[2]);
    if (argc >= 5 && !strcmp(argv[1], "genkey")) return cmd_genkey(argv[2], argv[3], argv[4]);
    if (argc >= 2 && strcmp(argv[1], "serve")) { fprintf(stderr, "usage: see the header of otr-helper.c\n"); return 64; }
    return serve();
}
