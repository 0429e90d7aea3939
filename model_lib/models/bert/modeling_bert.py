"""BERT (Devlin et al., 2018): a bidirectional transformer encoder.

Embeddings are the sum of token, absolute position and token-type (segment) embeddings,
followed by post-LayerNorm blocks. `BertModel` adds a pooler (tanh projection of the first,
[CLS], token); `BertForMaskedLM` predicts the tokens hidden behind [MASK] with a head whose
output projection is tied to the word embeddings.

Shapes: B batch, S tokens, E hidden_size, H heads, D = E / H, I intermediate_size,
V vocab.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model_lib.activations import get_activation
from model_lib.losses import masked_lm_loss
from model_lib.masking import attention_mask_for_sdpa
from model_lib.modeling_outputs import BaseModelOutput, MaskedLMOutput
from model_lib.modeling_utils import PreTrainedModel, check_input_ids
from model_lib.models.bert.configuration_bert import BertConfig


class BertEmbeddings(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: torch.Tensor,  # [B, S]
        token_type_ids: torch.Tensor,  # [B, S]
        position_ids: torch.Tensor,  # [B, S] or [1, S]
    ) -> torch.Tensor:
        embeddings = (
            self.word_embeddings(input_ids)
            + self.token_type_embeddings(token_type_ids)
            + self.position_embeddings(position_ids)
        )  # [B, S, E]
        return self.dropout(self.LayerNorm(embeddings))


class BertSelfAttention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_prob = config.attention_probs_dropout_prob

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, seq, embd = hidden.shape

        def heads(x: torch.Tensor) -> torch.Tensor:
            # [B, S, E] -> [B, H, S, D]
            return x.view(batch, seq, self.num_heads, self.head_dim).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            heads(self.query(hidden)),
            heads(self.key(hidden)),
            heads(self.value(hidden)),
            attn_mask=mask,  # [B, 1, S, S] bool, or None without padding
            dropout_p=self.dropout_prob if self.training else 0.0,
        )  # [B, H, S, D]
        return out.transpose(1, 2).reshape(batch, seq, embd)  # [B, S, E]


class BertSelfOutput(nn.Module):
    """Output projection, dropout, residual, then LayerNorm (BERT is post-norm)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        # `self.self` is the checkpoint's name ("attention.self.query.weight").
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(hidden, mask), hidden)


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = get_activation(config.hidden_act)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(hidden))  # [B, S, E] -> [B, S, I]


class BertOutput(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        # [B, S, I] -> [B, S, E]
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        attended = self.attention(hidden, mask)
        return self.output(self.intermediate(attended), attended)


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        for layer in self.layer:
            hidden = layer(hidden, mask)
        return hidden


class BertPooler(nn.Module):
    """tanh(dense(h[CLS])): the sentence vector the next-sentence task was trained on."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))  # [B, S, E] -> [B, E]


class BertPreTrainedModel(PreTrainedModel):
    config_class = BertConfig
    base_model_prefix = "bert"
    # Older checkpoints saved the position-id buffer.
    _keys_to_ignore_on_load = (r"embeddings\.position_ids$", r"embeddings\.token_type_ids$")
    _head_keys = (r"^cls\.",)
    config: BertConfig

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, BertLMPredictionHead):
            nn.init.zeros_(module.bias)


class BertModel(BertPreTrainedModel):
    """The BERT encoder; `pooler_output` is None when built without the pooler."""

    task = "base"

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,  # [B, S]
        attention_mask: torch.Tensor | None = None,  # [B, S], 1 token / 0 padding
        token_type_ids: torch.Tensor | None = None,  # [B, S]; default all segment 0
        position_ids: torch.Tensor | None = None,  # [B, S]; default 0..S-1
    ) -> BaseModelOutput:
        check_input_ids(input_ids, self.config.vocab_size)
        seq = input_ids.shape[1]
        if seq > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence of {seq} tokens exceeds "
                f"max_position_embeddings={self.config.max_position_embeddings}"
            )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        elif token_type_ids.shape != input_ids.shape:
            raise ValueError(
                f"token_type_ids {tuple(token_type_ids.shape)} must match "
                f"input_ids {tuple(input_ids.shape)}"
            )
        if position_ids is None:
            position_ids = torch.arange(seq, device=input_ids.device)[None]  # [1, S]
        hidden = self.embeddings(input_ids, token_type_ids, position_ids)  # [B, S, E]
        mask, _ = attention_mask_for_sdpa(
            attention_mask, query_length=seq, past_length=0, causal=False, device=hidden.device
        )
        hidden = self.encoder(hidden, mask)  # [B, S, E]
        pooled = self.pooler(hidden) if self.pooler is not None else None
        return BaseModelOutput(last_hidden_state=hidden, pooler_output=pooled)


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = get_activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.act(self.dense(hidden)))


class BertLMPredictionHead(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        # Checkpoints store the output bias here; `decoder.bias` is tied to it.
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden))  # [B, S, E] -> [B, S, V]


class BertOnlyMLMHead(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.predictions = BertLMPredictionHead(config)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.predictions(hidden)


class BertForMaskedLM(BertPreTrainedModel):
    """BERT with the masked-language-modelling head: token logits at every position."""

    task = "masked-lm"
    # BERT pre-training checkpoints (bert-base-uncased is one) also hold the pooler and the
    # next-sentence head, which this head does not use.
    _keys_to_ignore_on_load = (
        *BertPreTrainedModel._keys_to_ignore_on_load,
        r"^bert\.pooler\.",
        r"^cls\.seq_relationship\.",
    )

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.post_init()

    def tied_weights(self) -> dict[str, str]:
        tied = {"cls.predictions.decoder.bias": "cls.predictions.bias"}
        if self.config.tie_word_embeddings:
            tied["cls.predictions.decoder.weight"] = "bert.embeddings.word_embeddings.weight"
        return tied

    def forward(
        self,
        input_ids: torch.Tensor,  # [B, S]
        attention_mask: torch.Tensor | None = None,  # [B, S]
        token_type_ids: torch.Tensor | None = None,  # [B, S]
        position_ids: torch.Tensor | None = None,  # [B, S]
        labels: torch.Tensor | None = None,  # [B, S]; -100 everywhere but masked positions
    ) -> MaskedLMOutput:
        hidden = self.bert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
        ).last_hidden_state  # [B, S, E]
        logits = self.cls(hidden)  # [B, S, V]
        loss = masked_lm_loss(logits, labels) if labels is not None else None
        return MaskedLMOutput(logits=logits, loss=loss)
