"""The worker: runs the export and prediction jobs the server puts on the queue.

`trainhub worker` starts it (runner.py). It reads and writes the hub's database and storage
through the server's own modules, and is the only part of trainhub that loads models: exports run
ultralytics' exporter in a child process (exporter.py), predictions run the ONNX export through
onnxruntime (onnx_model.py) or the .pt through ultralytics (torch_model.py). The server never
imports this package (tests/unit/test_layering.py), so torch never enters the server process.
It needs the `export` extra: `pip install "trainhub[export]"`.
"""
