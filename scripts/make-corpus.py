#!/usr/bin/env python3
"""Generates the labelled detection corpus of docs/detection.md from OS packages only (espeak-ng, sox; and the Piper
neural voice when it is installed), reproducibly (fixed seed): people answering, answering machines with and without
beeps, fax tones; varied voices, speeds,
levels, background noise, A-law/µ-law round trips and packet loss. Writes OUT/*.wav (8 kHz µ-law) and
OUT/labels.csv (file,label,split,speech_end_ms,beep_end_ms). One file in three is in the held-out `test` split;
the rest is `tune` (the only split parameters may be tuned on).

    scripts/make-corpus.py [OUT]          (default: target/corpus)

Every fourth person and answering machine speaks with the Piper voice (`outdial say --engine piper`, from
scripts/install.sh) when it works: set OUTDIAL to the binary (default: `outdial` on the PATH, else the release build
in CARGO_TARGET_DIR or target/). Without it those speak with espeak-ng, and the script says so.
    outdial detect --report OUT           (accuracy on the held-out split)
"""
import os
import random
import shutil
import subprocess
import sys
import tempfile
import wave

SEED = 20261123
OUT = sys.argv[1] if len(sys.argv) > 1 else "target/corpus"
RATE = 8000

HUMAN = [
    "Hello?",
    "Hello, who is this?",
    "Yes?",
    "Hi, this is Dana speaking.",
    "Hello, yes?",
    "Speaking.",
    "Good morning.",
    "Yeah, hello?",
    "Hi there.",
    "Hello, Smith residence.",
]
GREETINGS = [
    "Hi, you have reached Sam. Please leave a message after the tone.",
    "The person you are calling is not available. Please leave a message after the beep.",
    "Hello, you have reached the voicemail of John Smith. I am not available right now. "
    "Please leave your name and number and I will call you back.",
    "Thank you for calling. Our office is currently closed. Please leave a message.",
    "You have reached five five five, one two three four. Leave a message.",
    "Hi, it's Maria. I can't take your call right now, leave a message and I'll get back to you.",
    "The mailbox you are trying to reach is full and cannot accept messages at this time.",
    "Hey, this is Tom. Leave a message.",
]
VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-us+f2", "en+m5", "en-029", "en-gb-scotland"]
BEEP_HZ = [425, 600, 850, 1000, 1200, 1400, 1800, 2000]
BEEP_MS = [150, 250, 400, 500, 800, 1000]


def run(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read(path):
    with wave.open(path) as w:
        assert w.getframerate() == RATE and w.getsampwidth() == 2 and w.getnchannels() == 1
        data = w.readframes(w.getnframes())
    return [int.from_bytes(data[i : i + 2], "little", signed=True) for i in range(0, len(data), 2)]


def outdial_binary():
    if os.environ.get("OUTDIAL"):
        return os.environ["OUTDIAL"]
    on_path = shutil.which("outdial")
    if on_path:
        return on_path
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    return os.path.join(target, "release", "outdial")


def piper_works(tmp):
    """Whether `outdial say --engine piper` speaks here."""
    try:
        out = os.path.join(tmp, "probe.wav")
        subprocess.run([outdial_binary(), "say", "--engine", "piper", "-o", out, "Hello."], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return os.path.getsize(out) > 1000
    except (OSError, subprocess.CalledProcessError):
        return False


def speech(tmp, text, voice, speed, pitch):
    raw = os.path.join(tmp, "tts.wav")
    out = os.path.join(tmp, "tts8k.wav")
    if voice == "piper":
        # One speaker at its own pace: speed and pitch do not apply.
        run(outdial_binary(), "say", "--engine", "piper", "-o", raw, text)
    else:
        run("espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", raw, text)
    run("sox", raw, "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer", out)
    s = read(out)
    # Trim espeak's own leading/trailing silence so that timings are exact.
    nz = [i for i, v in enumerate(s) if abs(v) > 300]
    return s[nz[0] : nz[-1] + 1] if nz else s


def silence(ms):
    return [0] * (RATE * ms // 1000)


def tone(hz, ms, amp):
    import math

    n = RATE * ms // 1000
    ramp = RATE * 5 // 1000
    out = []
    for i in range(n):
        env = min(1.0, i / ramp, (n - 1 - i) / ramp) if ramp else 1.0
        out.append(int(amp * env * math.sin(2 * math.pi * hz * i / RATE)))
    return out


def finish(rng, samples, path, level, noise_db, law, loss):
    """Scale, add noise, drop packets, and store through a G.711 round trip."""
    peak = max(1, max(abs(v) for v in samples))
    gain = level * 32767 / peak
    out = []
    for v in samples:
        x = v * gain + (rng.gauss(0, 32767 * 10 ** (noise_db / 20)) if noise_db is not None else 0)
        out.append(max(-32768, min(32767, int(x))))
    store(rng, out, path, law, loss)


def store(rng, out, path, law, loss):
    """Drops 20 ms packets (left silent) with probability `loss`, and writes through a G.711 round trip (sox)."""
    if loss:
        for start in range(0, len(out), 160):
            if rng.random() < loss:
                out[start : start + 160] = [0] * len(out[start : start + 160])
    tmp16 = path + ".s16.wav"
    with wave.open(tmp16, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"".join(int(v).to_bytes(2, "little", signed=True) for v in out))
    # No dither (sox adds random dither by default): the same seed gives the same files.
    run("sox", "-D", tmp16, "-e", law, "-b", "8", path)
    os.remove(tmp16)


def main():
    rng = random.Random(SEED)
    os.makedirs(OUT, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        piper = piper_works(tmp)
        print("Piper voice: " + ("used for every fourth person and machine" if piper else
                                 "not available (outdial say --engine piper failed); espeak-ng speaks instead"))

        def variant():
            return dict(
                level=rng.choice([0.15, 0.3, 0.5, 0.8]),
                noise_db=rng.choice([None, -60, -50, -45]),
                law=rng.choice(["mu-law", "a-law"]),
                loss=rng.choice([0, 0, 0.01, 0.03]),
            )

        n = 0

        def add(label, samples, speech_end, beep_end, v):
            nonlocal n
            name = f"{label}_{n:03d}.wav"
            split = "test" if n % 3 == 2 else "tune"
            finish(rng, samples, os.path.join(OUT, name), **v)
            rows.append(f"{name},{label},{split},{speech_end if speech_end is not None else ''},"
                        f"{beep_end if beep_end is not None else ''}")
            n += 1

        # People: silence (answering takes a moment), a short answer, sometimes a second phrase after a pause,
        # then waiting in silence.
        for i in range(72):
            text = HUMAN[i % len(HUMAN)]
            voice = "piper" if piper and i % 4 == 1 else VOICES[(i * 3) % len(VOICES)]
            s = speech(tmp, text, voice, rng.randint(140, 190), rng.randint(30, 70))
            lead = rng.choice([200, 400, 800, 1200, 1800])
            audio = silence(lead) + s
            end = len(audio) * 1000 // RATE
            if i % 6 == 5:
                # "Hello? … Hello?": the second phrase after 1.2 s.
                audio += silence(1200) + speech(tmp, "Hello?", voice, 170, 50)
            audio += silence(4000)
            add("human", audio, end, None, variant())

        # Answering machines: a greeting (some start with "Hello!" and a pause), with or without a beep.
        for i in range(72):
            text = GREETINGS[i % len(GREETINGS)]
            voice = "piper" if piper and i % 4 == 2 else VOICES[(i * 5 + 1) % len(VOICES)]
            s = speech(tmp, text, voice, rng.randint(150, 200), rng.randint(30, 70))
            audio = silence(rng.choice([100, 300, 600, 1000]))
            if i % 5 == 4:
                audio += speech(tmp, "Hello!", voice, 170, 50) + silence(600)
            audio += s
            beep_end = None
            if i % 4 != 3:
                audio += silence(rng.choice([200, 400, 700]))
                audio += tone(rng.choice(BEEP_HZ), rng.choice(BEEP_MS), 20000)
                beep_end = len(audio) * 1000 // RATE
            audio += silence(3000)
            add("machine", audio, None, beep_end, variant())

        # Fax machines: CED (2100 Hz, 2.6–4 s) or CNG (1100 Hz, 0.5 s on, 3 s off).
        for i in range(30):
            lead = silence(rng.choice([0, 200, 500, 1000]))
            if i % 2 == 0:
                audio = lead + tone(2100 + rng.choice([-10, 0, 10]), rng.choice([2600, 3300, 4000]), 16000)
            else:
                burst = tone(1100 + rng.choice([-30, 0, 30]), 500, 16000) + silence(3000)
                audio = lead + burst * 3
            audio += silence(1000)
            add("fax", audio, None, None, variant())

    with open(os.path.join(OUT, "labels.csv"), "w") as f:
        f.write("file,label,split,speech_end_ms,beep_end_ms\n")
        f.write("\n".join(rows) + "\n")
    print(f"{len(rows)} files in {OUT}")


if __name__ == "__main__":
    main()
