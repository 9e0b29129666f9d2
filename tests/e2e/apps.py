"""Bundle apps used by the end-to-end tests (python3 from the sandbox's host runtime)."""

# Deterministic: depends only on the task index, the request params and the dataset.
ECHO = """
import hashlib, os, time
index = int(os.environ["COMPTOIR_TASK_INDEX"])
args = os.environ.get("COMPTOIR_ARGS", "")
data = b""
if os.environ.get("COMPTOIR_DATASET"):
    data = open(os.environ["COMPTOIR_DATASET"], "rb").read()
if args.startswith("sleep="):
    time.sleep(float(args.split("=")[1]))
with open("/comptoir/out/result.txt", "w") as f:
    f.write(f"task {index} args {args!r} dataset {data!r} square {index * index}\\n")
"""

# Misbehaves according to the task index: each must end as a clear, agreed failure.
HOSTILE = """
import os, socket, sys, time
index = int(os.environ["COMPTOIR_TASK_INDEX"])
secret = os.environ.get("COMPTOIR_ARGS", "")
if index == 0:  # sleeps past the category's time
    time.sleep(3600)
elif index == 1:  # eats memory
    hog = []
    while True:
        hog.append(bytearray(16 << 20))
elif index == 2:  # fills the disk
    with open("/comptoir/out/fill.bin", "wb") as f:
        while True:
            f.write(b"x" * (1 << 20))
elif index == 3:  # forks without end
    while True:
        try:
            os.fork()
        except OSError:
            time.sleep(0.01)
elif index == 4:  # tries the network (the host's storage server)
    try:
        socket.create_connection(("127.0.0.1", int(secret.split(":")[1])), timeout=2).close()
    except OSError:
        sys.exit(3)
    open("/comptoir/out/leak.txt", "w").write("reached the host")
elif index == 5:  # reads a host file outside its inputs
    try:
        data = open(secret.split(":")[0], "rb").read()
    except OSError:
        sys.exit(4)
    open("/comptoir/out/leak.txt", "wb").write(data)
"""
