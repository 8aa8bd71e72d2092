# Export of every model to MINDIR, and the ModelZoo's 310 inference chain in its file formats.


rule export_model:
    input:
        checkpoint=f"{MODEL_DIR}/model.ckpt",
    output:
        f"{MODEL_DIR}/model.mindir",
    log:
        "logs/export_model/{device}/{attention}/fc{fc}_natt{natt}/seed{seed}.log",
    priority: RESULT_PRIORITY
    conda:
        "../envs/mindspore.yaml"
    threads: 1
    resources:
        **device_resources(None, "export_model", 2000),
    params:
        code=step_code("export_model"),
        upstream=lambda w: digest(SETTINGS.model_lineage(*row_of(w))),
        settings=lambda w: SETTINGS.export(*row_of(w)),
    script:
        "../scripts/export_model.py"


rule preprocess_310:
    input:
        features_pkl="results/features/feature_test.pkl",
    output:
        features_bin="results/infer/feature_test.bin",
        labels_bin="results/infer/label_test.bin",
    log:
        "logs/preprocess_310.log",
    priority: RESULT_PRIORITY
    conda:
        "../envs/mindspore.yaml"
    params:
        code=step_code("preprocess_310"),
        settings={"frames": config["flash"]["frames"]},
        upstream=digest(SETTINGS.features_lineage("test")),
    script:
        "../scripts/preprocess_310.py"


rule infer_310:
    input:
        mindir=f"{MODEL_DIR}/model.mindir",
        features_bin="results/infer/feature_test.bin",
        labels_bin="results/infer/label_test.bin",
    output:
        logits=f"{MODEL_DIR}/infer/logits.bin",
        timing=f"{MODEL_DIR}/infer/latency.json",
    log:
        "logs/infer_310/{device}/{attention}/fc{fc}_natt{natt}/seed{seed}.log",
    benchmark:
        "results/benchmarks/infer_310/{device}/{attention}/fc{fc}_natt{natt}/seed{seed}.tsv"
    priority: RESULT_PRIORITY
    conda:
        "../envs/mindspore.yaml"
    threads: config["inference"]["threads"]
    resources:
        **device_resources(config["inference"]["device"], "infer_310", 4000),
    params:
        code=step_code("infer_310"),
        upstream=lambda w: digest(
            SETTINGS.model_lineage(*row_of(w))
            + [SETTINGS.export(*row_of(w))]
            + SETTINGS.features_lineage("test")
        ),
        settings=SETTINGS.inference(),
    script:
        "../scripts/infer_310.py"


rule postprocess_310:
    input:
        logits_bin=f"{MODEL_DIR}/infer/logits.bin",
        labels_bin="results/infer/label_test.bin",
        timing_json=f"{MODEL_DIR}/infer/latency.json",
        eval_predictions=f"{MODEL_DIR}/test_predictions.npy",
    output:
        report(
            f"{MODEL_DIR}/infer/metrics.json",
            caption="../report/inference.rst",
            category="Inference",
            labels=MODEL_LABELS,
        ),
    log:
        "logs/postprocess_310/{device}/{attention}/fc{fc}_natt{natt}/seed{seed}.log",
    priority: RESULT_PRIORITY
    conda:
        "../envs/mindspore.yaml"
    params:
        code=step_code("postprocess_310"),
        upstream=lambda w: digest(SETTINGS.evaluated_lineage(*row_of(w))),
    script:
        "../scripts/postprocess_310.py"
