"""The workflow's steps: file in, file out, one function per rule's command.

A rule runs one ``moemui`` command (:mod:`moemui.cli`), and a command that does more
than call one package function calls one function here, which reads the rule's input
files, runs the pure functions of the package on them and writes the rule's outputs.
The commands that call a package function as it is (``build-model``, ``train``,
``gather-responses``, ``gather-store``) do so from :mod:`moemui.cli` directly.

One module per stage: :mod:`~moemui.steps.tasks`, :mod:`~moemui.steps.responses`,
:mod:`~moemui.steps.capture`, :mod:`~moemui.steps.store`, :mod:`~moemui.steps.metrics`,
:mod:`~moemui.steps.analyses`, :mod:`~moemui.steps.charts`; :mod:`~moemui.steps.tables`
reads and writes their CSV tables. torch and transformers load only in the steps that
run a model, so the table steps and Snakemake's parsing stay fast.
"""
