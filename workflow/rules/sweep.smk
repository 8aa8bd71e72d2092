# Training of every (device, attention, fc, natt) of the sweep (all its seeds in one job), evaluation
# of each model, and their metrics table.


rule train_model:
    input:
        settings_file,
        features="results/features/feature_train.pkl",
        validation="results/features/feature_val.pkl",
    output:
        checkpoint=per_seed("model.ckpt"),
        history=per_seed("history.tsv"),
        summary=per_seed("train.json"),
    log:
        "logs/train_model/{device}/{attention}/fc{fc}_natt{natt}.log",
    benchmark:
        TRAIN_BENCHMARK
    priority: train_priority
    conda:
        "../envs/mindspore.yaml"
    threads: config["train"]["threads"]
    resources:
        **device_resources(
            None,
            "train_model",
            config["train"]["mem_mb"],
            config["distributed"]["workers"],
        ),
    params:
        code=step_code("train_model"),
        upstream=digest(
            SETTINGS.features_lineage("train") + SETTINGS.features_lineage("val")
        ),
        settings=train_settings,
        # Resumable state (last epoch's weights, Adam, RNGs); not an output, so a killed
        # job's state survives Snakemake's clean-up of incomplete outputs. Keyed by the
        # settings, the features' content and the code; removed when the job finishes.
        state_dir=f"{ROW_DIR}/state",
        # msrun's own and its ranks' logs, when distributed.workers > 1.
        worker_logs="logs/train_model/{device}/{attention}/fc{fc}_natt{natt}.workers",
    script:
        "../scripts/train_model.py"


rule eval_model:
    input:
        features="results/features/feature_test.pkl",
        checkpoint=f"{MODEL_DIR}/model.ckpt",
        summary=f"{MODEL_DIR}/train.json",
    output:
        metrics=report(
            f"{MODEL_DIR}/metrics.json",
            caption="../report/model_accuracy.rst",
            category="Accuracy",
            subcategory="Per model",
            labels=MODEL_LABELS,
        ),
        predictions=f"{MODEL_DIR}/test_predictions.npy",
    log:
        "logs/eval_model/{device}/{attention}/fc{fc}_natt{natt}/seed{seed}.log",
    priority: RESULT_PRIORITY
    conda:
        "../envs/mindspore.yaml"
    threads: config["train"]["threads"]
    resources:
        **device_resources(None, "eval_model", config["train"]["mem_mb"]),
    params:
        code=step_code("eval_model"),
        upstream=lambda w: digest(
            SETTINGS.model_lineage(*row_of(w)) + SETTINGS.features_lineage("test")
        ),
        settings=lambda w: SETTINGS.evaluation(*row_of(w)),
        run_plan=RUN_PLAN,
    script:
        "../scripts/eval_model.py"


rule sweep_metrics:
    input:
        metrics_files=sweep_outputs(f"{MODEL_DIR}/metrics.json"),
    output:
        "results/metrics.tsv",
    log:
        "logs/sweep_metrics.log",
    localrule: True
    conda:
        "../envs/mindspore.yaml"
    params:
        code=step_code("sweep_metrics"),
        upstream=digest(sweep_lineage()),
    script:
        "../scripts/sweep_metrics.py"
