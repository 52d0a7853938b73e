"""The hub's operations: one function per thing the hub does, shared by every way in.

api/ (the HUB v1 JSON API), web/ (the dashboard) and the Platform endpoints parse their input,
call a function here and render what it returns. A function here holds the transaction, the
permission check and the rules (what a change implies for other rows, which blobs become garbage
and are deleted once the transaction committed); it sits on db/ (queries) and storage/.
"""
