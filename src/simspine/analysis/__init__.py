"""Plausibility analyses of spine motion (paper Sec. 3.2, Fig. 3, Fig. 4, Tab. B2).

* :mod:`~simspine.analysis.cobb`: lumbar lordosis (L1–S1) and thoracic kyphosis (T3–T12) per
  frame by Cobb's method, from the model's vertebral geometry or from the keypoint curve;
* :mod:`~simspine.analysis.rom`: per-level range of motion per sequence, literature bands;
* :mod:`~simspine.analysis.aggregate`: mean ± sd per action/subject, conservative outlier removal;
* :mod:`~simspine.analysis.tables`, :mod:`~simspine.analysis.figures`: Tab. B2-like tables (CSV,
  Markdown), Fig. 3/4-like figures (PNG, SVG, plotly);
* :mod:`~simspine.analysis.inputs`, :mod:`~simspine.analysis.run`: what ``simspine analyze`` reads
  and writes.
"""
