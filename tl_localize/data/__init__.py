"""Task and stimulus definitions: pure data, no model code.

Everything a localizer or an evaluation is made of lives here and nowhere else: the built-in
language stimuli (:mod:`.language`), the MD arithmetic problems and their held-out test items
(:mod:`.arithmetic`), the theory-of-mind stories and the tomloc reader (:mod:`.stories`),
minimal pairs (the built-in suite, BLiMP; :mod:`.pairs`), SyntaxGym suites and formulas
(:mod:`.syntaxgym`), and the readers that turn a damaged file into a clear error
(:mod:`.io`). :mod:`tl_localize.contrast` and :mod:`tl_localize.evaluate` both import this
layer and never each other; an import-linter contract keeps it free of model code.
"""
