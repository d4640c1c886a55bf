#!/usr/bin/env python3
"""The release binary as an attacker meets it, on this machine's loopback only, every step bounded.

Starts a private redis-server, a gateway stand-in (with a redirecting path and a second server the
redirect points at), and two instances of the service, then runs each attack and prints what held:

  patient   wrong authenticator codes with every short lock waited out: stops at
            lockout.max_consecutive_failures, and the right code is refused until the desk unlocks
  dialler   a withheld number walks 40 accounts sending codes: codes.max_sends_per_caller go out
  withheld  wrong codes from numbers hidden five ways: lockout.max_failures_withheld are judged
  uri       wrong codes from one line written as tel:, sip: and E.164: max_failures_per_caller judged
  basic     wrong Basic passwords from 127.0.0.2 while the real caller uses 127.0.0.1
  redirect  a gateway answering 307: the send answers error and nothing reaches the redirect target
  readyz    300 readiness requests in a row: what they cost Redis

Usage: attack.py BINARY   (deploy/bench/attack.sh builds the release binary and runs this)
Exit status 0 when every limit held.
"""
import base64
import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/twofactor"
KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
ADMIN = "attack-run-admin-token-0123456789abcdef"
USER, PASSWORD = "gia", "a-long-basic-password-7f3c"
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
STATUSES = {"success": "success", "not_found": "not found", "incorrect_code": "incorrect code",
            "code_expired": "expired", "locked": "locked", "send_limited": "send limited",
            "error": "error"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port} after {seconds} s")


class Gateway(http.server.BaseHTTPRequestHandler):
    """/send answers 200; /redirect answers 307 to the thief; counts what each path received."""
    hits = {}
    thief = 0

    def do_GET(self):
        path = urllib.parse.urlparse(self.path).path
        Gateway.hits[path] = Gateway.hits.get(path, 0) + 1
        if path == "/redirect":
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{Gateway.thief}/steal")
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


def serve(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def request(port, method, path, params=None, headers=None, source="127.0.0.1"):
    """One request on a fresh connection: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    query = "?" + urllib.parse.urlencode(params) if params else ""
    conn.request(method, path + query, headers=headers or {})
    res = conn.getresponse()
    body = res.read().decode()
    conn.close()
    return res.status, body


def status_of(body):
    start = body.find("<status>")
    return body[start + 8:body.find("</status>")] if start >= 0 else body[:60]


BASIC = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


def call(port, endpoint, params, source="127.0.0.1", headers=BASIC):
    status, body = request(port, "GET", f"/v1/{endpoint}", params, headers, source)
    return status, status_of(body)


def totp(secret_b32, t):
    import hashlib
    import hmac
    import struct
    key = base64.b32decode(secret_b32)
    digest = hmac.new(key, struct.pack(">Q", t // 30), hashlib.sha1).digest()
    o = digest[-1] & 15
    return "%06d" % ((struct.unpack(">I", digest[o:o + 4])[0] & 0x7FFFFFFF) % 1000000)


def main():
    work = tempfile.mkdtemp()
    procs = []
    results = []

    def report(name, held, detail):
        results.append(held)
        print(f"{name:<9} {'HELD' if held else 'FAILED':<6} {detail}", flush=True)

    try:
        redis_port = free_port()
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL))
        wait_port(redis_port)
        gateway = serve(Gateway)
        Gateway.thief = serve(Gateway)

        customers = [{"id": f"c{i}", "email": f"user{i}@example.com",
                      "phone": f"+447911{i:06d}"} for i in range(200)]
        customers.append({"id": "t1", "totp_secret": SECRET})
        seed = os.path.join(work, "customers.json")
        json.dump(customers, open(seed, "w"))

        def start(name, sms_path, extra=None):
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("TFA")}
            env.update({
                "TFA__SERVER__BIND": f"127.0.0.1:{port}",
                "TFA__STORE__URL": f"redis://127.0.0.1:{redis_port}/",
                "TFA__STORE__KEY_PREFIX": f"{name}:",
                "TFA__SECURITY__ENCRYPTION_KEY": KEY,
                "TFA__SECURITY__AUTH_SCHEME": "basic",
                "TFA__SECURITY__USER_ID": USER,
                "TFA__SECURITY__PASSWORD": PASSWORD,
                "TFA__ADMIN__TOKENS": f'["{ADMIN}"]',
                "TFA__DIRECTORY__SEED_FILE": seed,
                "TFA__DELIVERY__OUTBOX_FILE": os.path.join(work, f"{name}.jsonl"),
                "TFA__SMS__URL": f"http://127.0.0.1:{gateway}{sms_path}?to={{recipient}}&code={{code}}",
                "TFA__SMS__METHOD": "GET",
                "TFA__SMS__MAX_PER_NUMBER_PER_HOUR": "0",
                "TFA__LOCKOUT__MAX_FAILURES_WITHHELD": "20",
                "TFA__LOG__FILTER": "warn",
            })
            env.update(extra or {})
            env.update({f"TFA__STATUSES__{k.upper()}": v for k, v in STATUSES.items()})
            log = open(os.path.join(work, f"{name}.log"), "w")
            procs.append(subprocess.Popen([BIN, "serve"], env=env, stdout=log, stderr=log))
            wait_port(port)
            return port

        port = start("main", "/send")
        # Short locks a patient attacker waits out, and five wrong codes in a row for the desk.
        patient = start("patient", "/send", {"TFA__LOCKOUT__MAX_FAILURES": "2",
                                             "TFA__LOCKOUT__DURATION_SECONDS": "1",
                                             "TFA__LOCKOUT__MAX_CONSECUTIVE_FAILURES": "5"})
        redirecting = start("redirecting", "/redirect")

        # patient: every lock waited out; the judged wrong codes stop at five.
        judged, deadline = 0, time.time() + 30
        right = totp(SECRET, int(time.time()))
        wrong = "%06d" % ((int(right) + 1) % 1000000)
        while time.time() < deadline:
            _, s = call(patient, "code-authentication", {"CustomerId": "t1", "authCode_nbest1": wrong})
            if s == "locked":
                # A desk lock outlasts any wait: stop once two waits in a row changed nothing.
                time.sleep(1.2)
                _, again = call(patient, "code-authentication",
                                {"CustomerId": "t1", "authCode_nbest1": wrong})
                if again == "locked":
                    break
                judged += again == "incorrect code"
                continue
            judged += s == "incorrect code"
        _, right_answer = call(patient, "code-authentication",
                               {"CustomerId": "t1", "authCode_nbest1": totp(SECRET, int(time.time()))})
        _, view = request(patient, "GET", "/admin/v1/customers/t1",
                          headers={"Authorization": f"Bearer {ADMIN}"})
        needs_desk = json.loads(view).get("needs_desk")
        report("patient", judged == 5 and right_answer == "locked" and needs_desk,
               f"{judged} wrong codes judged (limit 5); right code then: {right_answer}; "
               f"needs_desk: {needs_desk}")

        # dialler: one withheld line sends codes to 40 customers.
        sent_before = Gateway.hits.get("/send", 0)
        answers = [call(port, "send-authentication-code",
                        {"CustomerId": f"c{i}", "TwoFactorAuthSelectedMethod": "SMS",
                         "CallerNumber": "anonymous"})[1] for i in range(40)]
        delivered = Gateway.hits.get("/send", 0) - sent_before
        report("dialler", answers.count("success") == 10 and delivered == 10,
               f"{answers.count('success')} sends answered success, {delivered} reached the "
               f"gateway, {answers.count('send limited')} refused (limit 10)")

        # withheld: wrong codes from numbers hidden five ways, across customers.
        hidden = ["anonymous", "Restricted", "private", "", "sip:anonymous@anonymous.invalid"]
        heard = [call(port, "code-authentication",
                      {"CustomerId": f"c{60 + i}", "authCode_nbest1": "000000",
                       "ANI": hidden[i % 5]})[1] for i in range(60)]
        judged = sum(s in ("incorrect code", "expired") for s in heard)
        report("withheld", judged == 20, f"{judged} of 60 judged (limit 20), "
               f"{heard.count('locked')} refused as locked")

        # uri: one line in three written forms, 60 guesses across customers.
        forms = ["tel:+13175550116", "sip:+13175550116@203.0.113.9;user=phone", "+1 317 555 0116"]
        heard = [call(port, "code-authentication",
                      {"CustomerId": f"c{120 + i}", "authCode_nbest1": "000000",
                       "ANI": forms[i % 3]})[1] for i in range(60)]
        judged = sum(s in ("incorrect code", "expired") for s in heard)
        report("uri", judged == 20, f"{judged} of 60 judged (max_failures_per_caller 20)")

        # basic: 30 wrong passwords from 127.0.0.2, then the right one from both addresses.
        bad = {"Authorization": "Basic " + base64.b64encode(f"{USER}:guess".encode()).decode()}
        codes = [call(port, "check-verified-contact-methods", {"CustomerId": "c1"}, "127.0.0.2",
                      bad)[0] for _ in range(30)]
        guesser_right = call(port, "check-verified-contact-methods", {"CustomerId": "c1"},
                             "127.0.0.2")[0]
        caller_right = call(port, "check-verified-contact-methods", {"CustomerId": "c1"})[0]
        report("basic", codes.count(401) == 10 and guesser_right == 429 and caller_right == 200,
               f"{codes.count(401)} answered 401, {codes.count(429)} answered 429; the right "
               f"password from the guesser: {guesser_right}, from the caller: {caller_right}")

        # redirect: the gateway answers 307 towards a thief.
        _, answer = call(redirecting, "send-authentication-code",
                         {"CustomerId": "c199", "TwoFactorAuthSelectedMethod": "SMS"})
        stolen = Gateway.hits.get("/steal", 0)
        report("redirect", answer == "error" and stolen == 0,
               f"send answered {answer}; the redirect target received {stolen} requests")

        # readyz: 300 in a row.
        def commands():
            out = subprocess.run(["redis-cli", "-p", str(redis_port), "INFO", "stats"],
                                 capture_output=True, text=True).stdout
            return int(next(l.split(":")[1] for l in out.splitlines()
                            if l.startswith("total_commands_processed")))
        time.sleep(1.1)
        before = commands()
        statuses = [request(port, "GET", "/readyz")[0] for _ in range(300)]
        cost = commands() - before - 1  # the INFO itself
        report("readyz", statuses.count(200) == 300 and cost <= 20,
               f"{statuses.count(200)} of 300 answered 200; Redis processed {cost} commands "
               f"meanwhile (the three instances' background work included)")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    ok = all(results)
    print(f"{sum(results)} held, {len(results) - sum(results)} failed")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
