"""The use-case portfolio: qualification scores, quadrants, detected phases, the value/complexity matrix.

`scoring` and `phase.phase_of` are pure; `report.build_portfolio` gathers what exists in the workspace;
`matrix` draws the PNG and `page` renders the HTML page (also served by the API at `/portfolio`).
"""
