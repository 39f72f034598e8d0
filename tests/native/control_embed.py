# Run inside tests/native/control_embed.c's embedded interpreter: about 0.5 s of Python.
import time

end = time.process_time() + 0.5
n = 0
while time.process_time() < end:
    n = sum(i * i for i in range(2000))  # HOT-PY
