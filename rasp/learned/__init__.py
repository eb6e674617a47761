"""Learned Transformer Programs (Friedman, Wettig & Chen 2023): train a constrained
transformer on a task and read it back as a program that provably equals the model.

`tasks` generates the paper's seven RASP tasks as the authors do; `model` is the trainable
program; `train` trains it with resume points; `program` reads the argmax model back as
predicates, closest-match selections and lookup tables and runs them with numpy."""
