"""ShopBench (Amazon KDD Cup 2024 / Shopping MMLU) as a family of registry tasks.

One module per task type (``multiple_choice``, ``retrieval``, ``ranking``, ``ner``,
``generation``) defines its official reading, strict reading, decoding and gold answer;
``metrics`` holds the nine record metrics, ``scoring`` the per-task scorer and the track and
overall summary, ``records`` the file reader. The generic loaders, request builder and
evaluator reach all of it through the task objects.
"""
