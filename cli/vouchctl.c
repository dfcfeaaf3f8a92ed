/* vouchctl: command-line parsing, help texts and the entry point. */
#include "vouchctl.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "client.h"
#include "vouch_version.h"

#define DEFAULT_URL "http://127.0.0.1:8080"

/* The help texts are user documentation: keep them under 80 columns. */
/* clang-format off */
static const char main_usage[] =
    "Usage: vouchctl [OPTIONS] COMMAND [ARGUMENTS]\n"
    "\n"
    "vouchctl is the operator's command line for a Vouch MDM server. Through the\n"
    "server's admin API it lists devices, shows their push and attestation state,\n"
    "asks devices for attestations and queues MDM commands; it lists and revokes\n"
    "the identity certificates of vouchd's ACME server and names the devices it\n"
    "expects; it asks the trust API whether a device may in. 'vouchctl verify'\n"
    "checks an attestation chain offline, without a server; 'vouchctl ca init'\n"
    "makes the CA of vouchd's ACME server, offline too.\n"
    "\n"
    "Commands:\n"
    "  devices                 List the devices the server knows\n"
    "  devices expect SERIAL...\n"
    "                          Expect devices by serial number: one enrollment\n"
    "                          profile URL each; 'devices expected' lists them\n"
    "  device UDID             Show one device, with its identity, push and\n"
    "                          attestation state\n"
    "  commands UDID           Show a device's queued commands and recent results\n"
    "  push UDID...            Push devices through APNs now\n"
    "  enqueue UDID... --file CMD.plist\n"
    "                          Queue an MDM command for one or more devices\n"
    "  attest UDID... | --all | --failed\n"
    "                          Ask devices for a new attestation now\n"
    "  attestations UDID       Show a device's attestation history\n"
    "  events                  Show the web-hook outbox; 'events retry ID' resends\n"
    "  profile                 Fetch the enrollment profile devices install\n"
    "  certs [UDID]            List the identity certificates vouchd's ACME server\n"
    "                          issued; 'certs revoke SERIAL' revokes one\n"
    "  tokens                  List the admin API's named tokens; 'tokens create\n"
    "                          NAME --scope S' makes one, 'tokens revoke NAME'\n"
    "  audit                   Show who called the admin API: what, when, from where\n"
    "  trust POLICY UDID       Ask whether a device may in under a trust policy,\n"
    "                          as a web application would (or name it by\n"
    "                          --serial S, --cert FILE or --cert-sha256 HEX)\n"
    "  verify CERT...          Verify an attestation chain offline (no server)\n"
    "  ca init --cert PATH --key PATH\n"
    "                          Make the CA that issues ACME device identities\n"
    "                          (offline)\n"
    "  help [COMMAND]          Show this help, or the help of one command\n"
    "\n"
    "Options (before or after the command):\n"
    "  --url URL               Base URL of the server (default: $VOUCH_URL, or\n"
    "                          " DEFAULT_URL ")\n"
    "  --token TOKEN           Bearer token of the admin API: the server's\n"
    "                          admin_token or a named token (see 'vouchctl tokens')\n"
    "                          (default: $VOUCH_ADMIN_TOKEN). Prefer the variable:\n"
    "                          other users can see command lines.\n"
    "  --json                  Print the server's JSON, indented, not tables\n"
    "  -h, --help              Show help and exit\n"
    "  --version               Show the version of vouchctl and exit\n"
    "\n"
    "Exit status:\n"
    "  0  success\n"
    "  1  failure: the server could not be reached, or answered with an error\n"
    "     (e.g. an unknown device or certificate);\n"
    "     for attest, a device was not asked; for verify, the chain did not verify;\n"
    "     for ca init, a file could not be written (or exists already)\n"
    "  2  usage error: unknown command or option, missing argument\n"
    "  3  for trust, the server's decision is deny\n"
    "\n"
    "Example:\n"
    "  export VOUCH_URL=https://mdm.example.com VOUCH_ADMIN_TOKEN=...\n"
    "  vouchctl devices --attestation failed\n"
    "  vouchctl attest --failed\n"
    "\n"
    "Run 'vouchctl COMMAND --help' for the details of one command.\n";

/* Every command's help ends with this pointer to the options all commands share. */
#define GLOBAL_OPTIONS_HINT                                                                        \
    "\n"                                                                                           \
    "The options --url, --token and --json work with every command: see\n"                         \
    "'vouchctl --help'.\n"

static const char devices_usage[] =
    "Usage: vouchctl devices [--attestation STATUS] [--json]\n"
    "       vouchctl devices expect SERIAL... [--json]\n"
    "       vouchctl devices expected [--json]\n"
    "\n"
    "List every device the server knows, ordered by UDID, one line each. vouchctl\n"
    "follows the server's pages to the end. The columns:\n"
    "\n"
    "  UDID           the device's unique identifier\n"
    "  SERIAL         serial number\n"
    "  MODEL/PRODUCT  model and product name, as the device reported them\n"
    "  OS             OS version (build)\n"
    "  ENROLLED       yes from the device's TokenUpdate until its CheckOut, with\n"
    "                '(generation N)' once a new identity certificate came for\n"
    "                the UDID (a re-enrollment: no verdict until it attests)\n"
    "  LAST SEEN      the device's last contact with the server (UTC)\n"
    "  ATTESTATION    the last verdict: verified, failed with its reason (e.g.\n"
    "                 'failed (udid_mismatch)'), expired (verified, but older than\n"
    "                 attestation_max_age or past its leaf), none (no verdict in\n"
    "                 this enrollment) or unsupported (a device that cannot\n"
    "                 attest answered without one); ', request pending' while a\n"
    "                 request is out (the verdict stands meanwhile)\n"
    "  NEXT CHECK     when the server plans to ask for the next attestation by\n"
    "                 itself ('vouchctl device UDID' says why); '-' while a\n"
    "                 request is out or the device is not enrolled\n"
    "\n"
    "A '-' marks a value the server does not know. Exits 0 when the list was\n"
    "read, even if it is empty.\n"
    "\n"
    "'devices expect SERIAL...' tells a server with vouchd's ACME server that\n"
    "these devices (serial numbers as Apple prints them: letters and digits) are\n"
    "coming, and gives each its own enrollment profile URL. The URL carries a\n"
    "token of that one device: the profile fetched with it lets only a device\n"
    "whose attestation names that serial number get an identity, and the token\n"
    "is spent once it has. vouchd keeps only a hash of the token: it is shown\n"
    "this once. Prints SERIAL, STATE and PROFILE URL, one line per serial:\n"
    "\n"
    "  expected   newly expected, with its first token\n"
    "  renewed    expected before and not enrolled yet: a new token, and the\n"
    "             previous one no longer works\n"
    "  enrolled   the device enrolled with its token already: nothing changed,\n"
    "             no URL\n"
    "\n"
    "Several serials go to the server in requests of at most 1000.\n"
    "\n"
    "'devices expected' lists the expected serials: when each was expected (or\n"
    "got its last token) and when it enrolled ('-': not yet).\n"
    "\n"
    "Options:\n"
    "  --attestation STATUS    Only devices whose last verdict is STATUS: verified\n"
    "                          (and not expired), failed, expired, none or\n"
    "                          unsupported; or pending: those with a request out\n"
    "                          (the server filters; vouchctl checks again)\n"
    "  --json                  Print one JSON array of device objects (with\n"
    "                          expect: of {serial_number, state, enroll_token,\n"
    "                          profile_url}; with expected: the server's array)\n"
    "\n"
    "Examples:\n"
    "  vouchctl devices expect C02XK1ZZJG5J C02XK2ZZJG5J > urls.txt\n"
    "  vouchctl devices expected\n"
    GLOBAL_OPTIONS_HINT;

static const char device_usage[] =
    "Usage: vouchctl device UDID [--json]\n"
    "       vouchctl device UDID allow-reenroll\n"
    "\n"
    "Show what the server knows about one device: identity, OS, enrollment (and\n"
    "its generation: a new identity certificate starts a new one, with no\n"
    "verdict), the state of its push token, and its attestation.\n"
    "\n"
    "The identity line names the certificate the enrollment is bound to:\n"
    "'acme-attested (hardware-bound)' for one vouchd's ACME server issued for a\n"
    "Secure Enclave key Apple attested, with its serial (see 'vouchctl certs')\n"
    "and expiry, and 'revoked' once it is (vouchd then refuses the device);\n"
    "'scep' for any other identity certificate; '-' when not enrolled.\n"
    "\n"
    "The attestation:\n"
    "\n"
    "  status        the last verdict: verified, failed, expired, none (none in\n"
    "                this enrollment) or unsupported (cannot attest)\n"
    "  request       the request out, if any: its reason and when it was asked\n"
    "  reason        why the last answer failed, e.g. untrusted_chain,\n"
    "                nonce_mismatch, udid_mismatch (see 'vouchctl verify --help')\n"
    "  freshness     fresh (made for the last request), cached (the device's\n"
    "                cached attestation, made for an earlier request; devices\n"
    "                make at most one a week) or unknown\n"
    "  verified_at   when the verdict was reached\n"
    "  expires_at    when a verified verdict stops counting: the leaf's expiry,\n"
    "                or attestation_max_age after Apple made it\n"
    "  requested_at  when the server asked for the last verdict's answer\n"
    "  received_at   when that answer came\n"
    "  generated_at  when Apple made the attestation: its age\n"
    "  leaf_expires_at  when the attestation certificate expires\n"
    "  next_due_at   when the server will ask again by itself\n"
    "  next_due_reason  why: random, max_age, os_change or retry\n"
    "  properties    what Apple attests: serial number, UDID, OS, sepOS and LLB\n"
    "                versions, software update device ID, and on a Mac SIP,\n"
    "                secure boot and third-party kernel extensions; after a\n"
    "                failed answer they are what it claimed, not to be trusted\n"
    "\n"
    "Times are UTC; '-' marks a value the server does not know. A property shown\n"
    "as 'null' is one Apple could not establish (absent or blank in the\n"
    "certificate): undetermined, not good.\n"
    "\n"
    "With allow-reenroll (reenroll = refuse on the server): let the device's\n"
    "next new identity certificate in, once, e.g. after it was erased.\n"
    "\n"
    "Exits 1 if the server does not know the device.\n"
    "\n"
    "Options:\n"
    "  --json                  Print the server's device object\n"
    GLOBAL_OPTIONS_HINT;

static const char commands_usage[] =
    "Usage: vouchctl commands UDID [--json]\n"
    "\n"
    "Show a device's commands, newest first: those still waiting, and the results\n"
    "of recent ones. STATUS is one of:\n"
    "\n"
    "  queued              waiting for the device to ask for it\n"
    "  NotNow              the device was busy; it is asked again later\n"
    "  Acknowledged        carried out\n"
    "  Error               the device could not carry it out\n"
    "  CommandFormatError  the device did not understand it\n"
    "\n"
    "Options:\n"
    "  --json                  Print the server's JSON array\n"
    GLOBAL_OPTIONS_HINT;

static const char push_usage[] =
    "Usage: vouchctl push UDID... [--json]\n"
    "\n"
    "Push devices now through APNs, so that they connect and fetch their queued\n"
    "commands (vouchd pushes by itself when commands are queued; this is for when\n"
    "you want a device to check in). Waits for APNs' answers and prints, per device,\n"
    "RESULT: delivered (with the apns-id), or unregistered (the token is dead until\n"
    "the device sends a new one), rejected, forbidden (the push certificate was\n"
    "refused), transient (APNs kept failing), no_token (not enrolled, or no push\n"
    "token yet).\n"
    "\n"
    "Exits 0 when every device was pushed, 1 otherwise (also when vouchd has no\n"
    "apns_cert).\n"
    "\n"
    "Options:\n"
    "  --json                  Print the server's JSON answer\n"
    GLOBAL_OPTIONS_HINT;

static const char enqueue_usage[] =
    "Usage: vouchctl enqueue UDID... --file CMD.plist [--json]\n"
    "\n"
    "Queue one MDM command for one or more devices. CMD.plist is a property list\n"
    "(XML or binary) whose Command dictionary holds the RequestType and the\n"
    "command's other keys; vouchctl checks that before sending it. The server adds\n"
    "a CommandUUID when the file has none. Each device receives the command the\n"
    "next time it asks the server for work.\n"
    "\n"
    "Prints the command's UUID and, for each device, whether it was queued. Exits\n"
    "0 only when every device was queued.\n"
    "\n"
    "Options:\n"
    "  -f, --file CMD.plist    The command; '-' reads it from standard input\n"
    "  --json                  Print the server's JSON answer\n"
    "\n"
    "Example:\n"
    "  cat > info.plist <<'EOF'\n"
    "  <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "  <plist version=\"1.0\">\n"
    "  <dict>\n"
    "    <key>Command</key>\n"
    "    <dict>\n"
    "      <key>RequestType</key>\n"
    "      <string>DeviceInformation</string>\n"
    "      <key>Queries</key>\n"
    "      <array><string>OSVersion</string><string>SerialNumber</string></array>\n"
    "    </dict>\n"
    "  </dict>\n"
    "  </plist>\n"
    "  EOF\n"
    "  vouchctl enqueue 663b07bb783e9ade1dae4fbb92ea12afc0ce5b69 --file info.plist\n"
    GLOBAL_OPTIONS_HINT;

static const char attest_usage[] =
    "Usage: vouchctl attest UDID... [--json]\n"
    "       vouchctl attest --all [--json]\n"
    "       vouchctl attest --failed [--json]\n"
    "\n"
    "Ask devices for a new Managed Device Attestation now: the server queues a\n"
    "DeviceInformation command with a fresh nonce for each and pushes. The\n"
    "device answers the next time it contacts the server; 'vouchctl device UDID'\n"
    "and 'vouchctl attestations UDID' then show the verdict. A device makes a new\n"
    "attestation at most once a week; asked sooner, it returns its cached one.\n"
    "\n"
    "Prints a table, one line per device, and a one-line summary:\n"
    "\n"
    "  UDID          the device\n"
    "  COMMAND UUID  the command that carries the request\n"
    "  RESULT        queued; already pending (a request was already out: its\n"
    "                command is shown, no new one is queued); or unknown device\n"
    "\n"
    "Exit status: 0 when every device was queued or already pending; 1 when any\n"
    "was unknown or not asked (the server failed); 2 for usage errors.\n"
    "\n"
    "Options:\n"
    "  --all                   Every device the server knows\n"
    "  --failed                Every device whose last attestation failed\n"
    "  --json                  Print the server's JSON: for one UDID its answer\n"
    "                          {\"udid\", \"command_uuid\", \"queued\"} (for an unknown\n"
    "                          device {\"error\": \"unknown device\"}); otherwise one\n"
    "                          object {\"results\": {UDID: {\"command_uuid\",\n"
    "                          \"queued\"} or {\"error\"}}} for all devices\n"
    "\n"
    "Several devices go to the server in requests of at most 1000.\n"
    GLOBAL_OPTIONS_HINT;

static const char attestations_usage[] =
    "Usage: vouchctl attestations UDID [--json]\n"
    "\n"
    "Show a device's attestation history, newest first, one answer a line:\n"
    "\n"
    "  RECEIVED        when the answer came (UTC)\n"
    "  STATUS          verified, failed, unsupported (answered without an\n"
    "                  attestation) or error (the device refused the request;\n"
    "                  its status follows, e.g. 'error (Error)')\n"
    "  FRESHNESS       fresh, cached or unknown (see 'vouchctl device --help')\n"
    "  REASON          why it failed (see 'vouchctl verify --help')\n"
    "  REQUEST REASON  why the server asked, e.g. operator\n"
    "  GENERATED       when Apple made the attestation\n"
    "  OS              the attested OS version\n"
    "\n"
    "Exits 1 if the server does not know the device.\n"
    "\n"
    "Options:\n"
    "  --json                  Print the server's JSON array, with each answer's\n"
    "                          properties, leaf_sha256 and chain (base64 DER)\n"
    GLOBAL_OPTIONS_HINT;

static const char verify_usage[] =
    "Usage: vouchctl verify [--roots PEM] [--nonce HEX] [--udid U] [--serial S]\n"
    "                       [--at TIME] [--json] CERT...\n"
    "       vouchctl verify --server [--roots PEM] [--json] UDID [ID]\n"
    "\n"
    "Verify a Managed Device Attestation offline, as the server does, without a\n"
    "server. The CERT files hold the chain the device sent, leaf first: each a\n"
    "DER certificate or PEM (a PEM file may hold several, taken in order).\n"
    "\n"
    "Checked in this order; the first that fails is the reason:\n"
    "\n"
    "  malformed            each item is one DER certificate, the Apple\n"
    "                       extensions of the leaf parse\n"
    "  untrusted_chain      the leaf verifies through the given intermediates to\n"
    "                       a root of --roots at the time --at\n"
    "  nonce_missing        the leaf carries a freshness code\n"
    "  nonce_mismatch       the freshness code equals --nonce\n"
    "  udid_mismatch        with --udid: the attested UDID equals it\n"
    "  serial_mismatch      with --serial: the attested serial number equals it\n"
    "\n"
    "(The server's last check, os_version_mismatch, compares a fresh answer with\n"
    "the OS version the device reports with it: it has no offline equivalent.)\n"
    "\n"
    "Without --nonce the freshness code cannot be matched, so a leaf that carries\n"
    "one fails with nonce_mismatch even when its chain is good: vouchctl cannot\n"
    "know which nonce was sent and does not pretend to. Pass the nonce the\n"
    "server sent in DeviceInformation (the raw bytes); for an ACME attestation\n"
    "the freshness code is the SHA-256 of the challenge token.\n"
    "\n"
    "Prints the status (verified or failed), the reason, the freshness (fresh\n"
    "when the code equals --nonce), generated_at and expires_at (the leaf's\n"
    "validity, UTC), leaf_sha256 (SHA-256 of the leaf's DER), the freshness code\n"
    "(not with --json) and the attested properties ('null': Apple could not\n"
    "establish it). Notes on what went wrong go to standard error.\n"
    "\n"
    "Exit status: 0 when verified, 1 when not, 2 for usage errors (no CERT, an\n"
    "unreadable file, bad hex, a bad time, unusable --roots).\n"
    "\n"
    "vouchctl verify --server [--roots PEM] [--json] UDID [ID] checks again an\n"
    "answer the server stored (ID from 'vouchctl attestations UDID'; default the\n"
    "newest with a chain): its chain, nonces, and the UDID, serial, OS version and\n"
    "time the server checked it against, all from the device's history. It\n"
    "prints the stored verdict beside the re-checked one and exits 0 when they\n"
    "agree, 1 when they do not (pass the server's attestation_roots as --roots).\n"
    "\n"
    "Options:\n"
    "  --roots PEM             Trusted roots (default: the Apple Enterprise\n"
    "                          Attestation Root CA built into vouchctl)\n"
    "  --nonce HEX             The nonce of the request, in hex (1 to 64 bytes)\n"
    "  --udid U                The device's UDID (on a Mac: its provisioning UDID)\n"
    "  --serial S              The device's serial number\n"
    "  --at TIME               Verify as of TIME: RFC 3339 (2025-08-01T00:00:00Z)\n"
    "                          or a Unix time (default: now)\n"
    "  --server                Check a stored answer again (see above): needs the\n"
    "                          server's --url and --token\n"
    "  --json                  Print the verdict as JSON: status, freshness,\n"
    "                          reason, generated_at, expires_at, leaf_sha256 and\n"
    "                          properties, in the admin API's shapes\n"
    "\n"
    "Without --server, vouchctl verify contacts no server: --url and --token are\n"
    "ignored.\n"
    "\n"
    "Examples:\n"
    "  vouchctl verify --nonce \"$NONCE_HEX\" --udid \"$UDID\" leaf.der subca.der\n"
    "  vouchctl verify --json --at 2025-08-01T00:00:00Z chain.pem\n";

static const char events_usage[] =
    "Usage: vouchctl events [--status STATUS] [--json]\n"
    "       vouchctl events retry ID...\n"
    "\n"
    "The web-hook outbox, newest first, one line per event and receiver (at most\n"
    "1000): ID, TOPIC, UDID, CREATED, STATUS (pending: not delivered yet, with\n"
    "the time of its NEXT attempt; delivered; dead: not delivered within\n"
    "webhook_max_age), ATTEMPTS and the LAST ERROR. 'events retry ID' sends\n"
    "events again now (dead ones too).\n"
    "\n"
    "Options:\n"
    "  --status STATUS         Only pending, delivered or dead deliveries\n"
    "  --json                  Print the server's JSON array\n"
    GLOBAL_OPTIONS_HINT;

static const char profile_usage[] =
    "Usage: vouchctl profile [--enroll-token TOKEN] [--out FILE]\n"
    "\n"
    "Fetch the enrollment profile (.mobileconfig) that devices install, as the\n"
    "server builds it from its configuration (GET /mdm/enroll): signed when it\n"
    "has a profile signing certificate. Written to FILE, or to standard output.\n"
    "\n"
    "Options:\n"
    "  --enroll-token TOKEN    The server's enroll_token, if it has one\n"
    "  --out FILE              Write the profile there (default: standard output)\n"
    GLOBAL_OPTIONS_HINT;

static const char certs_usage[] =
    "Usage: vouchctl certs [UDID] [--json]\n"
    "       vouchctl certs revoke SERIAL [--reason TEXT] [--json]\n"
    "\n"
    "List the identity certificates vouchd's ACME server issued, newest first\n"
    "(at most 1000): all of them, or those of the device UDID. The columns:\n"
    "\n"
    "  SERIAL         the certificate's serial number (hex)\n"
    "  UDID           the device it was issued to\n"
    "  DEVICE SERIAL  the device's serial number, as Apple attested it\n"
    "  ISSUED         when it was issued (UTC)\n"
    "  NOT AFTER      when it expires (UTC)\n"
    "  STATE          active; revoked, with the reason; or expired (NOT AFTER is\n"
    "                 past, by this computer's clock)\n"
    "  BOUND          yes when the device's MDM enrollment uses this certificate\n"
    "\n"
    "'certs revoke SERIAL' revokes a certificate: vouchd refuses the device's\n"
    "requests with it from then on, and sends the identity.revoked web-hook\n"
    "event. SERIAL is as listed (hex; colons, as openssl prints them, are\n"
    "ignored). Prints the certificate's state afterwards. Revoking a revoked\n"
    "certificate changes nothing: it keeps its first time and reason.\n"
    "\n"
    "Exit status: 0 when the list was read (even if empty) or the certificate is\n"
    "revoked; 1 when the server failed or knows no certificate with that serial;\n"
    "2 for usage errors.\n"
    "\n"
    "Options:\n"
    "  --reason TEXT           Why, kept with the revocation and sent in the web\n"
    "                          hook: 1 to 64 bytes (default: operator)\n"
    "  --json                  Print the server's JSON: an array of certificate\n"
    "                          objects, or the revoked certificate's object\n"
    "\n"
    "Examples:\n"
    "  vouchctl certs 00008030-001A2C3E0E38802E\n"
    "  vouchctl certs revoke 5f3c0a9e1b2d --reason lost\n"
    GLOBAL_OPTIONS_HINT;

static const char tokens_usage[] =
    "Usage: vouchctl tokens [--json]\n"
    "       vouchctl tokens create NAME --scope admin|read|trust [--json]\n"
    "       vouchctl tokens revoke NAME [--json]\n"
    "\n"
    "The admin API's named tokens, besides the server's configured admin_token\n"
    "(which is not listed). Each has a scope:\n"
    "\n"
    "  admin   everything, tokens and the audit included\n"
    "  read    the admin API's GET requests (not GET /v1/push/, which pushes;\n"
    "          not the tokens nor the audit)\n"
    "  trust   only the trust API (/v1/trust/...), for the services that ask\n"
    "          whether to let a device in\n"
    "\n"
    "A request its token's scope does not allow gets HTTP 403.\n"
    "\n"
    "'tokens' lists them, oldest first: NAME, SCOPE, CREATED, BY (the token that\n"
    "created it), STATE (active or revoked) and REVOKED (when).\n"
    "\n"
    "'tokens create NAME --scope S' makes a token and prints it on standard\n"
    "output, alone on its line: the server keeps only its SHA-256, so this is the\n"
    "only time it is shown. NAME is 1 to 64 letters, digits, '.', '_' or '-';\n"
    "it stays taken after the token is revoked, so the audit always names one\n"
    "token. Every server sharing the database accepts the token within a moment.\n"
    "\n"
    "'tokens revoke NAME' revokes it: from then on every server sharing the\n"
    "database refuses it (HTTP 401). Revoking a revoked token changes nothing.\n"
    "\n"
    "Only an admin token may list, create or revoke tokens.\n"
    "\n"
    "Exit status: 0 when done; 1 when the server failed, the name is taken\n"
    "(create) or unknown (revoke); 2 for usage errors.\n"
    "\n"
    "Options:\n"
    "  --scope SCOPE           admin, read or trust (tokens create)\n"
    "  --json                  Print the server's JSON: the array of tokens, the new\n"
    "                          {\"name\", \"scope\", \"token\"}, or the revoked token\n"
    "\n"
    "Example:\n"
    "  VOUCH_ADMIN_TOKEN=$(vouchctl tokens create dashboard --scope read)\n"
    GLOBAL_OPTIONS_HINT;

static const char audit_usage[] =
    "Usage: vouchctl audit [--limit N] [--before ID] [--json]\n"
    "\n"
    "Every call of the admin API a token was allowed to make, newest first\n"
    "(trust decisions are counted in /metrics instead). The columns:\n"
    "\n"
    "  ID      the entry's number, for --before\n"
    "  AT      when (UTC)\n"
    "  TOKEN   who: the token's name (admin_token for the configured one)\n"
    "  SCOPE   the token's scope\n"
    "  METHOD  GET, POST, PUT or DELETE\n"
    "  PATH    what: the path and query string as sent\n"
    "  CLIENT  from where: the client's address (behind a trusted proxy, the\n"
    "          address it forwarded)\n"
    "\n"
    "Needs an admin token.\n"
    "\n"
    "Options:\n"
    "  --limit N               At most N entries, 1 to 1000 (default: 100)\n"
    "  --before ID             Only entries older than ID: the next page\n"
    "  --json                  Print the server's JSON array\n"
    GLOBAL_OPTIONS_HINT;

static const char trust_usage[] =
    "Usage: vouchctl trust POLICY UDID [--json]\n"
    "       vouchctl trust POLICY --serial S [--json]\n"
    "       vouchctl trust POLICY --cert FILE [--json]\n"
    "       vouchctl trust POLICY --cert-sha256 HEX [--json]\n"
    "\n"
    "Ask the server's trust API whether a device may in under POLICY, now: the\n"
    "question a web application, a VPN or a Wi-Fi server asks at every login\n"
    "(POST /v1/trust/POLICY). Name the device once: by its UDID, by its serial\n"
    "number (the device seen last with it), or by an identity certificate, as a\n"
    "TLS terminator would see it.\n"
    "\n"
    "Prints the decision (allow or deny) and the policy, then:\n"
    "\n"
    "  reasons       why a deny denies, e.g. not_enrolled, identity_revoked,\n"
    "                attestation_missing, attestation_expired, os_too_old (the\n"
    "                server's documentation, docs/trust.md, lists them all)\n"
    "  subject       what the question named, as the server looked it up\n"
    "  device        UDID, serial number, product (platform and OS version),\n"
    "                and whether it is enrolled; 'none known' when nothing\n"
    "                matched\n"
    "  attestation   the last verdict (none, verified, failed, expired or\n"
    "                unsupported), its freshness (fresh or cached), when it was\n"
    "                verified and when it expires\n"
    "  identity      the certificate the device speaks with: acme-attested\n"
    "                (hardware-bound) or scep; current, or not current when\n"
    "                another replaced it; revoked; and its expiry\n"
    "  evaluated at  when the server decided (by its database's clock); valid\n"
    "                until: when an allow may turn by time alone ('-' for a\n"
    "                deny: time admits no one)\n"
    "\n"
    "Policies are the policy.NAME.* lines of vouchd's configuration; 'default'\n"
    "exists unless configured otherwise (require = verified). The token needs\n"
    "scope trust or admin ('vouchctl tokens create NAME --scope trust').\n"
    "\n"
    "Exit status: 0 allow; 3 deny (with --json too), so scripts can gate on it;\n"
    "1 when the server failed or has no such policy; 2 for usage errors (no\n"
    "subject or several, a --cert file that cannot be read or holds no\n"
    "certificate, bad hex).\n"
    "\n"
    "Options:\n"
    "  --serial S              The device by its serial number\n"
    "  --cert FILE             The device by an identity certificate: the first\n"
    "                          one in FILE (PEM, or DER), at most 64 KiB\n"
    "  --cert-sha256 HEX       The device by its certificate's SHA-256: 64 hex\n"
    "                          digits (colons, as openssl prints them, allowed)\n"
    "  --json                  Print the server's JSON answer\n"
    "\n"
    "Examples:\n"
    "  vouchctl trust web 00008130-001A2C3E0E38802E\n"
    "  vouchctl trust vpn --cert client.pem --json\n"
    "  vouchctl trust web --serial F4GXK0ABCD12 > /dev/null && echo admitted\n"
    GLOBAL_OPTIONS_HINT;

static const char ca_usage[] =
    "Usage: vouchctl ca init --cert PATH --key PATH [--cn NAME] [--days N]\n"
    "\n"
    "Make the certificate authority with which vouchd's ACME server issues\n"
    "hardware-bound device identities: a new P-384 key and a self-signed CA\n"
    "certificate (basicConstraints CA:TRUE with pathlen 0, keyUsage keyCertSign\n"
    "and cRLSign, both critical; ECDSA with SHA-384), both written as PEM.\n"
    "Runs offline: no server is contacted, --url and --token are ignored.\n"
    "\n"
    "The key is written unencrypted (PKCS#8) with mode 0600: keep it on the\n"
    "server, readable only by the user vouchd runs as. Neither file is ever\n"
    "overwritten: when either exists, nothing is written.\n"
    "\n"
    "Prints the certificate's SHA-256 fingerprint and expiry, and the two lines\n"
    "to add to vouchd's configuration (acme_ca_cert and acme_ca_key; with them\n"
    "vouchd also trusts the identities it issues).\n"
    "\n"
    "Options:\n"
    "  --cert PATH             Where to write the CA certificate (PEM)\n"
    "  --key PATH              Where to write its private key (PEM, mode 0600)\n"
    "  --cn NAME               The CA's common name, at most 64 bytes (default:\n"
    "                          \"Vouch Device Identity CA\")\n"
    "  --days N                Validity in days, 1 to 36500 (default: 3650)\n"
    "\n"
    "Exit status: 0 when both files were written, 1 when they could not be (one\n"
    "exists already, a directory is missing), 2 for usage errors.\n"
    "\n"
    "Example:\n"
    "  vouchctl ca init --cert /etc/vouch/acme-ca.pem --key /etc/vouch/acme-ca.key\n";

static const char help_usage[] =
    "Usage: vouchctl help [COMMAND]\n"
    "\n"
    "Show the help of vouchctl, or of one command.\n";
/* clang-format on */

enum opt_id {
    OPT_URL,
    OPT_TOKEN,
    OPT_JSON,
    OPT_HELP,
    OPT_VERSION,
    OPT_FILE,
    OPT_ATTESTATION,
    OPT_ALL,
    OPT_FAILED,
    OPT_ROOTS,
    OPT_NONCE,
    OPT_UDID,
    OPT_SERIAL,
    OPT_AT,
    OPT_SERVER,
    OPT_STATUS,
    OPT_ENROLL_TOKEN,
    OPT_OUT,
    OPT_CERT,
    OPT_KEY,
    OPT_CN,
    OPT_DAYS,
    OPT_REASON,
    OPT_SCOPE,
    OPT_LIMIT,
    OPT_BEFORE,
    OPT_CERT_SHA256,
};

struct opt_spec {
    const char *name; /* long name, without "--" */
    char short_name;  /* 0: none */
    bool has_arg;
    enum opt_id id;
};

static const struct opt_spec global_opts[] = {
    {"url", 0, true, OPT_URL},          {"token", 0, true, OPT_TOKEN},
    {"json", 0, false, OPT_JSON},       {"help", 'h', false, OPT_HELP},
    {"version", 0, false, OPT_VERSION},
};
static const struct opt_spec devices_opts[] = {{"attestation", 0, true, OPT_ATTESTATION}};
static const struct opt_spec enqueue_opts[] = {{"file", 'f', true, OPT_FILE}};
static const struct opt_spec attest_opts[] = {{"all", 0, false, OPT_ALL},
                                              {"failed", 0, false, OPT_FAILED}};
static const struct opt_spec events_opts[] = {{"status", 0, true, OPT_STATUS}};
static const struct opt_spec profile_opts[] = {{"enroll-token", 0, true, OPT_ENROLL_TOKEN},
                                               {"out", 'o', true, OPT_OUT}};
static const struct opt_spec ca_opts[] = {
    {"cert", 0, true, OPT_CERT},
    {"key", 0, true, OPT_KEY},
    {"cn", 0, true, OPT_CN},
    {"days", 0, true, OPT_DAYS},
};
static const struct opt_spec certs_opts[] = {{"reason", 0, true, OPT_REASON}};
static const struct opt_spec tokens_opts[] = {{"scope", 0, true, OPT_SCOPE}};
static const struct opt_spec audit_opts[] = {{"limit", 0, true, OPT_LIMIT},
                                             {"before", 0, true, OPT_BEFORE}};
static const struct opt_spec trust_opts[] = {
    {"serial", 0, true, OPT_SERIAL},
    {"cert", 0, true, OPT_CERT},
    {"cert-sha256", 0, true, OPT_CERT_SHA256},
};
static const struct opt_spec verify_opts[] = {
    {"roots", 0, true, OPT_ROOTS}, {"nonce", 0, true, OPT_NONCE},
    {"udid", 0, true, OPT_UDID},   {"serial", 0, true, OPT_SERIAL},
    {"at", 0, true, OPT_AT},       {"server", 0, false, OPT_SERVER},
};

struct subcommand {
    const char *name;
    const char *usage;
    const struct opt_spec *opts;
    size_t nopts;
    size_t min_args;
    size_t max_args;
    const char *args_name; /* what is missing when there are too few arguments */
    bool offline;          /* needs no server: no URL, token or HTTP client */
    int (*run)(struct ctl *ctl);
};

static const struct subcommand subcommands[] = {
    /* devices checks its own arguments: none, or expect SERIAL..., or expected. */
    {"devices", devices_usage, devices_opts, 1, 0, SIZE_MAX, NULL, false, cmd_devices},
    {"device", device_usage, NULL, 0, 1, 2, "UDID", false, cmd_device},
    {"commands", commands_usage, NULL, 0, 1, 1, "UDID", false, cmd_commands},
    {"enqueue", enqueue_usage, enqueue_opts, 1, 1, SIZE_MAX, "UDID", false, cmd_enqueue},
    /* attest checks its own arguments: UDIDs, or --all, or --failed. */
    {"attest", attest_usage, attest_opts, 2, 0, SIZE_MAX, "UDID", false, cmd_attest},
    {"attestations", attestations_usage, NULL, 0, 1, 1, "UDID", false, cmd_attestations},
    {"push", push_usage, NULL, 0, 1, 1000, "UDID", false, cmd_push},
    {"events", events_usage, events_opts, 1, 0, SIZE_MAX, NULL, false, cmd_events},
    {"profile", profile_usage, profile_opts, 2, 0, 0, NULL, false, cmd_profile},
    {"verify", verify_usage, verify_opts, 6, 1, SIZE_MAX, "CERT", true, cmd_verify},
    /* certs checks its own arguments: [UDID], or revoke SERIAL. */
    {"certs", certs_usage, certs_opts, 1, 0, 2, NULL, false, cmd_certs},
    /* tokens checks its own arguments: none, create NAME, or revoke NAME. */
    {"tokens", tokens_usage, tokens_opts, 1, 0, 2, NULL, false, cmd_tokens},
    {"audit", audit_usage, audit_opts, 2, 0, 0, NULL, false, cmd_audit},
    /* trust checks its own subject: UDID, or --serial, --cert or --cert-sha256. */
    {"trust", trust_usage, trust_opts, 3, 1, 2, "POLICY", false, cmd_trust},
    {"ca", ca_usage, ca_opts, 4, 1, 1, "action (init)", true, cmd_ca},
    {"help", help_usage, NULL, 0, 0, 1, NULL, false, NULL},
};

static const struct subcommand *find_subcommand(const char *name)
{
    for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++) {
        if (strcmp(subcommands[i].name, name) == 0)
            return &subcommands[i];
    }
    return NULL;
}

int ctl_usage_error(const char *subcommand, const char *fmt, ...)
{
    va_list ap;
    fputs("vouchctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (subcommand != NULL)
        fprintf(stderr, "\nTry 'vouchctl %s --help' for more information.\n", subcommand);
    else
        fputs("\nTry 'vouchctl --help' for more information.\n", stderr);
    return CTL_EXIT_USAGE;
}

/* The option arg names (short or long, without dashes), among the globals and sub's own. */
static const struct opt_spec *find_option(const struct subcommand *sub, const char *name,
                                          size_t name_len, bool is_short)
{
    const struct opt_spec *tables[2] = {global_opts, sub != NULL ? sub->opts : NULL};
    size_t sizes[2] = {sizeof(global_opts) / sizeof(global_opts[0]), sub != NULL ? sub->nopts : 0};

    for (size_t t = 0; t < 2; t++) {
        for (size_t i = 0; i < sizes[t]; i++) {
            const struct opt_spec *o = &tables[t][i];
            if (is_short ? (name_len == 1 && o->short_name == name[0])
                         : (strlen(o->name) == name_len && memcmp(o->name, name, name_len) == 0))
                return o;
        }
    }
    return NULL;
}

/* What the command line asked for, before anything is sent. */
struct cmdline {
    const struct subcommand *sub;
    const char *url;
    const char *token;
    bool json;
    bool help;
    bool version;
    const char *file;
    const char *attestation;
    bool all;
    bool failed;
    const char *roots;
    const char *nonce;
    const char *udid;
    const char *serial;
    const char *at;
    bool server;
    const char *status;
    const char *enroll_token;
    const char *out;
    const char *ca_cert;
    const char *ca_key;
    const char *ca_cn;
    const char *ca_days;
    const char *reason;
    const char *scope;
    const char *limit;
    const char *before;
    const char *cert_sha256;
    char **args;
    size_t nargs;
};

/*
 * Sorts argv into options and positional arguments. Options may come anywhere: global ones before
 * or after the subcommand, a subcommand's own after it. "--" ends the options. Returns
 * CTL_EXIT_OK, or CTL_EXIT_USAGE after printing why.
 */
static int parse_cmdline(int argc, char **argv, struct cmdline *cl)
{
    bool options_done = false;

    cl->args = calloc((size_t)argc, sizeof(*cl->args));
    if (cl->args == NULL) {
        fprintf(stderr, "vouchctl: out of memory\n");
        return CTL_EXIT_FAILURE;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *sub_name = cl->sub != NULL ? cl->sub->name : NULL;

        if (options_done || a[0] != '-' || a[1] == '\0') {
            if (cl->sub == NULL) {
                cl->sub = find_subcommand(a);
                if (cl->sub == NULL)
                    return ctl_usage_error(NULL, "unknown command '%s'", a);
            } else {
                cl->args[cl->nargs++] = argv[i];
            }
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }

        bool is_short = a[1] != '-';
        const char *name = is_short ? a + 1 : a + 2;
        const char *eq = is_short ? NULL : strchr(name, '=');
        size_t name_len = eq != NULL ? (size_t)(eq - name) : strlen(name);
        const struct opt_spec *o = find_option(cl->sub, name, name_len, is_short);
        if (o == NULL)
            return ctl_usage_error(sub_name, "unknown option '%s'", a);

        const char *value = NULL;
        if (o->has_arg) {
            if (eq != NULL) {
                value = eq + 1;
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                return ctl_usage_error(sub_name, "option '%s' needs an argument", a);
            }
        } else if (eq != NULL) {
            return ctl_usage_error(sub_name, "option '--%.*s' takes no argument", (int)name_len,
                                   name);
        }

        switch (o->id) {
        case OPT_URL:
            cl->url = value;
            break;
        case OPT_TOKEN:
            cl->token = value;
            break;
        case OPT_JSON:
            cl->json = true;
            break;
        case OPT_HELP:
            cl->help = true;
            break;
        case OPT_VERSION:
            cl->version = true;
            break;
        case OPT_FILE:
            cl->file = value;
            break;
        case OPT_ATTESTATION:
            cl->attestation = value;
            break;
        case OPT_STATUS:
            cl->status = value;
            break;
        case OPT_ENROLL_TOKEN:
            cl->enroll_token = value;
            break;
        case OPT_OUT:
            cl->out = value;
            break;
        case OPT_ALL:
            cl->all = true;
            break;
        case OPT_FAILED:
            cl->failed = true;
            break;
        case OPT_ROOTS:
            cl->roots = value;
            break;
        case OPT_NONCE:
            cl->nonce = value;
            break;
        case OPT_UDID:
            cl->udid = value;
            break;
        case OPT_SERIAL:
            cl->serial = value;
            break;
        case OPT_AT:
            cl->at = value;
            break;
        case OPT_SERVER:
            cl->server = true;
            break;
        case OPT_CERT:
            cl->ca_cert = value;
            break;
        case OPT_KEY:
            cl->ca_key = value;
            break;
        case OPT_CN:
            cl->ca_cn = value;
            break;
        case OPT_DAYS:
            cl->ca_days = value;
            break;
        case OPT_REASON:
            cl->reason = value;
            break;
        case OPT_SCOPE:
            cl->scope = value;
            break;
        case OPT_LIMIT:
            cl->limit = value;
            break;
        case OPT_BEFORE:
            cl->before = value;
            break;
        case OPT_CERT_SHA256:
            cl->cert_sha256 = value;
            break;
        }
    }
    return CTL_EXIT_OK;
}

/* "help [COMMAND]" and "--help": the help goes to stdout, as asked for. */
static int print_help(const struct subcommand *sub, const char *topic)
{
    if (topic != NULL) {
        sub = find_subcommand(topic);
        if (sub == NULL)
            return ctl_usage_error(NULL, "unknown command '%s'", topic);
    }
    fputs(sub != NULL && strcmp(sub->name, "help") != 0 ? sub->usage : main_usage, stdout);
    return CTL_EXIT_OK;
}

static bool url_is_http(const char *url)
{
    return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

/* A token goes into an HTTP header line: a CR or LF in it would start another header. */
static bool token_is_printable(const char *token)
{
    for (const unsigned char *p = (const unsigned char *)token; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return false;
    }
    return true;
}

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

static int run(struct cmdline *cl)
{
    const struct subcommand *sub = cl->sub;

    if (cl->version) {
        printf("vouchctl %s\n", VOUCH_VERSION);
        return CTL_EXIT_OK;
    }
    if (cl->help)
        return print_help(sub, NULL);
    if (sub == NULL) {
        fputs(main_usage, stderr);
        return CTL_EXIT_USAGE;
    }
    if (sub->run == NULL) /* help */
        return print_help(NULL, cl->nargs > 0 ? cl->args[0] : NULL);
    if (cl->nargs < sub->min_args)
        return ctl_usage_error(sub->name, "missing %s", sub->args_name);
    if (cl->nargs > sub->max_args)
        return ctl_usage_error(sub->name, "unexpected argument '%s'", cl->args[sub->max_args]);

    struct ctl ctl = {
        .json = cl->json,
        .subcommand = sub->name,
        .args = cl->args,
        .nargs = cl->nargs,
        .file = cl->file,
        .attestation = cl->attestation,
        .status = cl->status,
        .enroll_token = cl->enroll_token,
        .out = cl->out,
        .all = cl->all,
        .failed = cl->failed,
        .roots = cl->roots,
        .nonce = cl->nonce,
        .udid = cl->udid,
        .serial = cl->serial,
        .at = cl->at,
        .server = cl->server,
        .ca_cert = cl->ca_cert,
        .ca_key = cl->ca_key,
        .ca_cn = cl->ca_cn,
        .ca_days = cl->ca_days,
        .reason = cl->reason,
        .scope = cl->scope,
        .limit = cl->limit,
        .before = cl->before,
        .cert_sha256 = cl->cert_sha256,
    };
    if (sub->offline && !cl->server)
        return sub->run(&ctl);

    const char *url = cl->url != NULL ? cl->url : env_nonempty("VOUCH_URL");
    if (url == NULL)
        url = DEFAULT_URL;
    if (!url_is_http(url))
        return ctl_usage_error(NULL,
                               "invalid server URL '%s': it must start with http:// or "
                               "https://",
                               url);
    const char *token = cl->token != NULL ? cl->token : env_nonempty("VOUCH_ADMIN_TOKEN");
    if (token != NULL && !token_is_printable(token))
        return ctl_usage_error(NULL, "the admin token contains control characters");

    ctl.have_token = token != NULL && token[0] != '\0';
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "vouchctl: cannot initialize libcurl\n");
        return CTL_EXIT_FAILURE;
    }
    ctl.client = client_new(url, token);
    if (ctl.client == NULL) {
        fprintf(stderr, "vouchctl: cannot create the HTTP client\n");
        curl_global_cleanup();
        return CTL_EXIT_FAILURE;
    }
    int rc = sub->run(&ctl);
    client_free(ctl.client);
    curl_global_cleanup();
    return rc;
}

int main(int argc, char **argv)
{
    struct cmdline cl;

    memset(&cl, 0, sizeof(cl));
    int rc = parse_cmdline(argc, argv, &cl);
    if (rc == CTL_EXIT_OK)
        rc = run(&cl);
    free(cl.args);

    /* Output that could not be written is a failure, not a silent truncation. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "vouchctl: cannot write to standard output\n");
        if (rc == CTL_EXIT_OK)
            rc = CTL_EXIT_FAILURE;
    }
    return rc;
}
