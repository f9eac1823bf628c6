"""The largest sizes a config (and the command line) may ask for, each with its reason.

The schema's ``maximum`` of each key is one of these (``tests/test_config_faults.py``
checks they agree); the CLI's argument types check the same bounds. Kept in a module of
its own, with no imports, so that the table steps load it without torch or jsonschema.
"""

from __future__ import annotations

#: Samples of a task (``tasks[].n``), and of the ablation (``analyses.ablation.n_samples``),
#: and a diversity subset size: every sample is held in memory as a dict while a task is
#: made, answered and scored; 10 million is far above any benchmark (MMLU: 14,042).
MAX_SAMPLES = 10_000_000

#: Sequences per generate() or capture forward (``generation.batch_size``,
#: ``capture.batch_size``): 65,536 padded rows is already past any accelerator's memory.
MAX_BATCH = 65_536

#: New tokens per response (every ``max_new_tokens``): 1,048,576 (2^20) is the longest
#: context of any current model; a budget beyond the model's context fails in the job.
MAX_NEW_TOKENS = 1_048_576

#: Shards of a task (``tasks[].shards``): one job per shard and stage, each a Slurm job;
#: 4,096 is past any cluster's GPUs for one task (a 14,042-sample MMLU in shards of 4).
MAX_SHARDS = 4_096

#: Every seed (``models[].seed``, ``tasks[].seed``, ``analyses.diversity.seed``,
#: ``analyses.ablation.seeds``): 2^32 - 1, within every generator the code seeds
#: (torch.manual_seed: < 2^64; the ablation table's Int64 seed column: < 2^63).
MAX_SEED = 2**32 - 1

#: Random subsets per size (``analyses.diversity.draws``): each draw is one MUI
#: computation over the subset, per model, task, size and threshold.
MAX_DRAWS = 10_000

#: Experts kept per cell in the top-experts table (``analyses.top_experts``): more than
#: any model has MoE experts in all its layers (DeepSeek-V3: 58 x 257).
MAX_TOP_EXPERTS = 1_000_000

#: A checkpoint's training step (``series[].checkpoints[].step``) and a release number
#: (``release``): within int64 tables, and short enough for the model id
#: ``<series id>-step<step>`` in file names.
MAX_STEP = 10**12

#: Significant digits of a threshold or a rho in the tables (``"%.10g"``, the CSV float
#: format of :func:`moemui.steps.tables.write_csv`): two values equal at this precision would
#: be one row twice.
TABLE_DIGITS = 10

#: GPUs of one model job (``models[].resources.gpu``, ``series[].resources.gpu``,
#: ``model_resources.gpu``): a job is one process on one node (``device_map`` spreads a
#: model over that node's GPUs), and no node has 64 (eight or sixteen is the most).
MAX_GPUS = 64

#: Host memory of one model job, in MB (``resources.mem_mb``): 64 TiB (2^26 MB), more
#: than any single node has.
MAX_MEM_MB = 2**26

#: Time limit of one model job, in minutes (``resources.runtime``): a year, past any
#: cluster's longest time limit.
MAX_RUNTIME_MINUTES = 365 * 24 * 60

#: CPUs of one model job (``resources.cpus_per_task``): 4096, more than any single node
#: has hardware threads.
MAX_CPUS = 4096
