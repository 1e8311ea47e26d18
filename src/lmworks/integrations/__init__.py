"""lmworks on engines that already run at scale: Ray Data (:mod:`.ray_data`) and Spark (:mod:`.spark`).

Each module imports its engine lazily and is only needed with its extra installed
(``lmworks[ray]``, ``lmworks[spark]``).
"""
