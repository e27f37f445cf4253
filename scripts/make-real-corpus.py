#!/usr/bin/env python3
"""Generates the labelled detection corpus of *real recorded voices* (docs/detection.md, "The corpora"): studio
recordings of eight voices in five languages from Debian's Asterisk sound packages — short answers, longer
answers, voicemail greetings, carrier intercepts, call-screening prompts, each voice's own recorded beep — mixed at
the levels, noise, codecs and packet loss of real lines, reproducibly (fixed seed). Fax calls are synthetic tones
(no package ships a fax recording). Writes OUT/*.wav (8 kHz µ-law or A-law) and OUT/labels.csv:

    file,label,split,speech_end_ms,beep_end_ms,source,kind

`split` is `test` (held out: every third file; never tune on it) or `tune`. `source` is the voice; `kind` what the
file holds (see KINDS below). Needs sox and the Debian packages listed in SOURCES:

    apt-get install --no-install-recommends asterisk-core-sounds-{en,es,fr,it,ru}-wav \
        asterisk-prompt-it-menardi-wav asterisk-prompt-fr-armelle asterisk-prompt-es-co

    scripts/make-real-corpus.py [OUT]          (default: target/real-corpus)
    outdial detect --report OUT                (accuracy on the held-out split, per source)
"""
import importlib.util
import math
import os
import random
import sys
import tempfile

# The helpers of the synthetic corpus's generator: running a tool, reading a WAV, silence, the line (loss, G.711).
_spec = importlib.util.spec_from_file_location("make_corpus", os.path.join(os.path.dirname(__file__), "make-corpus.py"))
_corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_corpus)
run, read, silence, store = _corpus.run, _corpus.read, _corpus.silence, _corpus.store

SEED = 20261126
OUT = sys.argv[1] if len(sys.argv) > 1 else "target/real-corpus"
RATE = 8000
ROOT = "/usr/share/asterisk/sounds"

# Voice → (folder under ROOT, Debian package, licence). Every file of the corpus comes from these recordings.
SOURCES = {
    "en-allison": ("en_US_f_Allison", "asterisk-core-sounds-en-wav", "CC-BY-SA-3.0"),
    "es-mx-allison": ("es_MX_f_Allison", "asterisk-core-sounds-es-wav", "CC-BY-SA-3.0"),
    "fr-ca-june": ("fr_CA_f_June", "asterisk-core-sounds-fr-wav", "CC-BY-SA-3.0"),
    "it-carlo": ("it_IT_m_Carlo", "asterisk-core-sounds-it-wav", "CC-BY-SA-3.0"),
    "ru-ivrvoice": ("ru_RU_f_IvrvoiceRU", "asterisk-core-sounds-ru-wav", "CC-BY-SA-3.0"),
    "it-menardi": ("it_IT_f_Menardi", "asterisk-prompt-it-menardi-wav", "CC-BY-SA-3.0 (Italian)"),
    "fr-armelle": ("fr", "asterisk-prompt-fr-armelle", "GPL-2+"),
    "es-co": ("es", "asterisk-prompt-es-co", "GPL-2+"),
}

# Short things a person says on answering (the first that the voice has is used in turn).
SHORT = ["hello", "vm-no", "auth-thankyou", "goodbye", "vm-goodbye", "agent-loginok"]

KINDS = {
    "short": "a person: one short word or phrase, then waiting",
    "repeat": "a person: a word, 1.2 s, the word again",
    "long-answer": "a person: 'hello', a short pause, 'one moment please' (about 2 s of speech)",
    "greeting": "a voicemail greeting (the person at extension N is unavailable / on the phone, leave a message)",
    "imitation": "a voicemail greeting that starts 'hello' and a pause, like a person",
    "intercept": "a carrier announcement (not in service, all circuits busy), some after SIT tones",
    "screening": "a call-screening prompt (unidentified callers are not accepted; say your name at the tone)",
    "fax": "CED or CNG (synthetic tones)",
}


class Voice:
    def __init__(self, name, tmp):
        self.name = name
        self.dir = os.path.join(ROOT, SOURCES[name][0])
        self.tmp = tmp
        self.cache = {}

    def has(self, prompt):
        return self.path(prompt) is not None

    def path(self, prompt):
        for ext in ("wav", "gsm"):
            p = os.path.join(self.dir, f"{prompt}.{ext}")
            if os.path.exists(p):
                return p
        return None

    def get(self, prompt):
        """The recording at 8 kHz, its leading and trailing silence cut (so that timings are exact)."""
        if prompt not in self.cache:
            src = self.path(prompt)
            out = os.path.join(self.tmp, f"{self.name}-{prompt.replace('/', '_')}.wav")
            run("sox", src, "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer", out)
            s = read(out)
            peak = max(1, max(abs(v) for v in s))
            nz = [i for i, v in enumerate(s) if abs(v) > peak * 0.02]
            self.cache[prompt] = s[nz[0] : nz[-1] + 1] if nz else s
        return self.cache[prompt]

    def first(self, prompts, k):
        have = [p for p in prompts if self.has(p)]
        return have[k % len(have)]

    def number(self, rng):
        return join([self.get(f"digits/{rng.randint(1, 9)}") for _ in range(rng.choice([3, 4]))], 120)


def join(parts, gap_ms):
    out = []
    for i, p in enumerate(parts):
        if i:
            out += silence(gap_ms)
        out += p
    return out


def tone(freqs, ms, amp, ramp_ms=5):
    n = RATE * ms // 1000
    ramp = RATE * ramp_ms // 1000
    out = []
    for i in range(n):
        env = min(1.0, i / ramp, (n - 1 - i) / ramp) if ramp else 1.0
        v = sum(math.sin(2 * math.pi * f * i / RATE) for f in freqs) / len(freqs)
        out.append(int(amp * env * v))
    return out


def sit():
    """The 'no circuit / not in service' SIT: 913.8, 1370.6, 1776.7 Hz."""
    return tone([913.8], 274, 12000) + tone([1370.6], 274, 12000) + tone([1776.7], 380, 12000) + silence(300)


def active_rms(samples):
    peak = max(1, max(abs(v) for v in samples))
    act = [v for v in samples if abs(v) > peak * 0.05]
    return math.sqrt(sum(v * v for v in act) / max(1, len(act)))


def finish(rng, samples, path, level_db, noise_db, law, loss):
    """Scale the speech to `level_db` dBFS (RMS of its active part), add line noise, drop packets, and store through
    a G.711 round trip."""
    gain = 32768 * 10 ** (level_db / 20) / max(1.0, active_rms(samples))
    sigma = 32768 * 10 ** (noise_db / 20) if noise_db is not None else 0
    hum = rng.random() < 0.3
    out = []
    for i, v in enumerate(samples):
        x = v * gain
        if sigma:
            x += rng.gauss(0, sigma)
            if hum:
                # Mains hum and its harmonic, as on analogue lines.
                x += sigma * (math.sin(2 * math.pi * 50 * i / RATE) + 0.5 * math.sin(2 * math.pi * 150 * i / RATE))
        out.append(max(-32768, min(32767, int(x))))
    store(rng, out, path, law, loss)


def recorded_beep(voices, v, k):
    """The voice's own recorded beep, else another voice's; it ends where its tone has decayed 25 dB below its
    loudest 20 ms (one recording has a click after a long decay: that is not the beep)."""
    others = [o for o in voices if o.has("beep")]
    s = (v if v.has("beep") else others[k % len(others)]).get("beep")
    levels = [math.sqrt(sum(x * x for x in s[i : i + 160]) / 160) for i in range(0, len(s) - 159, 160)]
    loud = max(levels)
    end = next((i for i, lv in enumerate(levels) if lv < loud * 10 ** (-25 / 20)), len(levels))
    return s[: end * 160]


def synthetic_beep(rng):
    """A beep as real systems make them: ramps, harmonics, a wobble, or two tones."""
    f = rng.choice([440, 600, 850, 1000, 1400, 1800, 2000])
    ms = rng.choice([200, 300, 500, 800])
    ramp = rng.choice([10, 20, 30, 40])
    kind = rng.choice(["ramped", "harmonics", "two-tone"])
    if kind == "ramped":
        return tone([f], ms, 16000, ramp)
    if kind == "harmonics":
        base = tone([f], ms, 14000, ramp)
        h2 = tone([2 * f], ms, 14000 * 0.3, ramp) if 2 * f < 3800 else [0] * len(base)
        return [a + b for a, b in zip(base, h2)]
    f2 = rng.choice([x for x in [600, 850, 1000, 1400] if x != f])
    return tone([f], ms // 2, 16000, ramp) + tone([f2], ms // 2, 16000, ramp)


def main():
    rng = random.Random(SEED)
    os.makedirs(OUT, exist_ok=True)
    rows = []
    missing = [SOURCES[n][1] for n in SOURCES if not os.path.isdir(os.path.join(ROOT, SOURCES[n][0]))]
    if missing:
        sys.exit("missing Debian packages: " + " ".join(missing) + " (apt-get install them)")
    with tempfile.TemporaryDirectory() as tmp:
        voices = [Voice(n, tmp) for n in SOURCES]
        n = 0

        def add(label, samples, speech_end, beep_end, source, kind, level=None):
            nonlocal n
            name = f"{label}_{n:03d}.wav"
            split = "test" if n % 3 == 2 else "tune"
            v = dict(
                level_db=level if level is not None else rng.choice([-36, -30, -24, -18, -12]),
                noise_db=rng.choice([None, -68, -60, -52]),
                law=rng.choice(["mu-law", "a-law"]),
                loss=rng.choice([0, 0, 0.01, 0.03]),
            )
            finish(rng, samples, os.path.join(OUT, name), **v)
            rows.append(",".join([name, label, split, str(speech_end if speech_end is not None else ""),
                                  str(beep_end if beep_end is not None else ""), source, kind]))
            n += 1

        def ms(samples):
            return len(samples) * 1000 // RATE

        for k in range(12):
            for v in voices:
                lead = silence(rng.choice([200, 400, 800, 1200, 2000]))
                # People.
                kind = ["short", "short", "repeat", "long-answer"][k % 4]
                word = v.get(v.first(SHORT, k))
                if kind == "long-answer" and v.has("one-moment-please"):
                    audio = lead + join([word, v.get("one-moment-please")], rng.choice([250, 400]))
                else:
                    kind = "short" if kind == "long-answer" else kind
                    audio = lead + word
                end = ms(audio)
                if kind == "repeat":
                    audio += silence(1200) + word
                add("human", audio + silence(4000), end, None, v.name, kind)

                # Machines.
                kind = ["greeting", "greeting", "imitation", "intercept", "screening", "greeting"][k % 6]
                lead = silence(rng.choice([100, 300, 600, 1000, 2000]))
                if kind == "intercept":
                    msg = v.get(v.first(["ss-noservice", "all-circuits-busy-now"], k))
                    audio = lead + (sit() if k % 2 else []) + msg + silence(3000)
                    add("machine", audio, None, None, v.name, kind)
                    continue
                if kind == "screening":
                    greeting = v.get(v.first(["privacy-unident", "priv-recordintro"], k))
                else:
                    state = v.first(["vm-isunavail", "vm-isonphone"], k)
                    parts = [v.get("vm-theperson"), v.number(rng), v.get(state)]
                    if k % 3 != 1:
                        parts.append(v.get("vm-intro"))
                    if k % 4 == 0 and v.has("vm-nobodyavail"):
                        parts = [v.get("vm-nobodyavail"), v.get("vm-intro")]
                    greeting = join(parts, rng.choice([150, 300]))
                    if kind == "imitation":
                        hello = v.get(v.first(["hello", "vm-no", "auth-thankyou"], k))
                        greeting = hello + silence(rng.choice([900, 1200])) + greeting
                audio = lead + greeting
                beep_end = None
                if k % 5 != 4:
                    audio += silence(rng.choice([200, 400, 700]))
                    audio += recorded_beep(voices, v, k) if k % 2 == 0 else synthetic_beep(rng)
                    beep_end = ms(audio)
                add("machine", audio + silence(3000), None, beep_end, v.name, kind)

        # Fax machines: CED (2100 Hz, 2.6–4 s) or CNG (1100 Hz, 0.5 s on, 3 s off).
        for i in range(18):
            lead = silence(rng.choice([0, 200, 500, 1000]))
            if i % 2 == 0:
                audio = lead + tone([2100 + rng.choice([-10, 0, 10])], rng.choice([2600, 3300, 4000]), 16000)
            else:
                audio = lead + (tone([1100 + rng.choice([-30, 0, 30])], 500, 16000) + silence(3000)) * 3
            add("fax", audio + silence(1000), None, None, "synthetic", "fax", level=rng.choice([-24, -18, -12]))

    with open(os.path.join(OUT, "labels.csv"), "w") as f:
        f.write("file,label,split,speech_end_ms,beep_end_ms,source,kind\n")
        f.write("\n".join(rows) + "\n")
    print(f"{len(rows)} files in {OUT}")


if __name__ == "__main__":
    main()
