"""Real wheels standing in for vLLM's (which has no CPU wheel): a `vllm` whose `vllm` script
records what it was started with and answers `/v1/models` as vLLM does, needing a `torch`
2.14.0 (vLLM's torch, not the console's 2.13.0), itself a wheel here."""

from pathlib import Path

from engine.demo.wheels import build_wheel
from engine.serving.vllm_client import VLLM_PIN

PINNED = VLLM_PIN.split("==")[1]
FAKE_VLLM = """
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer


def main():
    args = sys.argv[1:]
    with open(os.environ["FAKE_VLLM_RECORD"], "a") as out:
        keep = ("CUDA_VISIBLE_DEVICES", "VLLM_NO_USAGE_STATS", "HF_HUB_OFFLINE")
        env = {key: os.environ.get(key) for key in keep}
        out.write(json.dumps({"argv": args, "env": env, "python": sys.executable}) + "\\n")
    base = args[1]
    names = args[args.index("--served-model-name") + 1 : args.index("--enable-lora")]
    port = int(args[args.index("--port") + 1])

    class Models(BaseHTTPRequestHandler):
        def do_GET(self):
            data = [{"id": name, "root": base, "parent": None} for name in names]
            body = json.dumps({"object": "list", "data": data}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    HTTPServer(("127.0.0.1", port), Models).serve_forever()
"""


def vllm_wheels(folder: Path, vllm: str = PINNED, torch: str = "2.14.0") -> Path:
    folder.mkdir(parents=True)
    dist_info = f"vllm-{vllm}.dist-info"
    files = {
        "fakevllm.py": FAKE_VLLM,
        f"{dist_info}/entry_points.txt": "[console_scripts]\nvllm = fakevllm:main\n",
    }
    build_wheel("vllm", vllm, files, folder, requires=["torch==2.14.0"])
    build_wheel("torch", torch, {"torch/__init__.py": f"__version__ = '{torch}'\n"}, folder)
    return folder
