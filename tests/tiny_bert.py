"""A small random-init BERT with a WordPiece vocabulary trained on local text: no download at all."""
from __future__ import annotations

import os

CORPUS = """
PostgreSQL is a powerful open source object-relational database system.
Semantic search finds documents by meaning rather than by exact words.
The quick brown fox jumps over the lazy dog. Natural language processing is fun.
Embeddings are vectors; similar texts get nearby vectors. I love databases.
自然言語処理 東京 天気 晴れ 日本語 テキスト 検索 データベース
def embed(text): return model(text) # code comments too 12345 67890
""".strip().splitlines()


def make_tiny_bert(folder: str, hidden: int = 32, layers: int = 2, sentence_transformers: bool = True,
                   max_seq_length: int = 64, seed: int = 0) -> str:
    """Write a random BertModel + fast tokenizer (+ sentence-transformers mean pooling config) to folder."""
    import json

    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    os.makedirs(folder, exist_ok=True)
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    wordpiece.train_from_iterator(CORPUS * 20, trainer)
    vocab = sorted(wordpiece.get_vocab().items(), key=lambda kv: kv[1])
    vocab_file = os.path.join(folder, "vocab.txt")
    with open(vocab_file, "w", encoding="utf-8") as f:
        f.writelines(token + "\n" for token, _ in vocab)
    tokenizer = BertTokenizerFast(vocab_file=vocab_file, model_max_length=128)
    tokenizer.save_pretrained(folder)

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=4, intermediate_size=hidden * 2, max_position_embeddings=128)
    BertModel(config).eval().save_pretrained(folder)
    if sentence_transformers:
        os.makedirs(os.path.join(folder, "1_Pooling"), exist_ok=True)
        with open(os.path.join(folder, "modules.json"), "w") as f:
            json.dump([
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
            ], f)
        with open(os.path.join(folder, "1_Pooling", "config.json"), "w") as f:
            json.dump({"word_embedding_dimension": hidden, "pooling_mode_cls_token": False,
                       "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False}, f)
        with open(os.path.join(folder, "sentence_bert_config.json"), "w") as f:
            json.dump({"max_seq_length": max_seq_length, "do_lower_case": False}, f)
    return folder
