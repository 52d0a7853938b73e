"""Copy-ready code the dashboard shows: train a model by its URL, point the clients at this hub."""


def environment(public_url: str) -> str:
    """Return the two variables that point ultralytics and hub-sdk at this hub."""
    return f"export ULTRALYTICS_HUB_API={public_url}\nexport ULTRALYTICS_HUB_WEB={public_url}"


def platform_environment(public_url: str, key: str = "ul_<your key>") -> str:
    """Return the two variables that point ultralytics 8.4 at this hub, and a first run."""
    return (
        f"export ULTRALYTICS_PLATFORM_URL={public_url}\n"
        f"export ULTRALYTICS_API_KEY={key}\n"
        "yolo train model=yolo11n.pt data=coco8.yaml epochs=3 project=<you>/<project>"
    )


def yolo_train(model_url: str) -> str:
    """Return the ultralytics code that trains (or resumes) a model by its URL."""
    return f'from ultralytics import YOLO\n\nmodel = YOLO("{model_url}")\nresults = model.train()'


def trainhub_session(model_url: str) -> str:
    """Return the HUB-compatible HUBTrainingSession loop for any PyTorch training code."""
    return (
        "import json\n"
        "from trainhub import HUBTrainingSession\n\n"
        f'session = HUBTrainingSession("{model_url}")\n'
        "for epoch in range(epochs):\n"
        '    metrics = train_one_epoch()  # {"train/loss": ..., "metrics/mAP50-95(B)": ...}\n'
        "    session.metrics_queue[epoch] = json.dumps(metrics)\n"
        "    session.upload_metrics()\n"
        '    session.upload_model(epoch, "last.pt", is_best=is_best)\n'
        'session.upload_model(epoch, "best.pt", map=best_map, final=True)'
    )


def first_run(public_url: str) -> str:
    """Return the shell commands that start a first training run against this hub."""
    return (
        f"{environment(public_url)}\n"
        "yolo settings hub=True\n"
        "yolo login <your API key from Settings>\n"
        "yolo train model=yolo11n.pt data=coco8.yaml epochs=3"
    )
