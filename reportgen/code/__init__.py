"""Code by execution: take the code out of an answer (``extract``), run it with the prompt's tests in a
sandbox (``sandbox``), and say how each run ended (``Verdict``). Running model-written code is opt-in
(the study's ``code.execute``, or ``--execute-code``); ``reportgen.run.coderun`` does it at run time and
stores each verdict keyed by the program's content, so an unchanged answer is never run twice."""
