"""The experiments' models; importing this package registers each of them with transformers' Auto classes (listed in
``registration.REGISTERED``). See README.md beside this file.

Build a model from a configuration file with
``AutoModelForCausalLM.from_config(AutoConfig.from_pretrained("experiment/configs/<name>.json"))`` (an encoder with
``AutoModelForSequenceClassification``), and load a saved one with ``AutoModelForCausalLM.from_pretrained(path)``.
"""

from . import bert_segment, compressive, gpt2_segment, gpt2_with_memoria, infinity_former, memoria_bert, rmt, transfo_xl
