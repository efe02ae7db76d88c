"""GradAttn in Keras 3: attention-routed depth tokens instead of residual shortcuts.

```python
import keras_gradattn
model = keras_gradattn.create_model("gradattn_learned_pe", num_classes=10,
                                    input_shape=(28, 28, 1))
model.compile()
model.fit(images, labels, epochs=10)
```
"""

from keras_gradattn import layers
from keras_gradattn.models import GradAttnClassifier
from keras_gradattn.models import ImageClassifier
from keras_gradattn.models import ResNetBackbone
from keras_gradattn.models import create_model
from keras_gradattn.models import describe_models
from keras_gradattn.models import list_models
from keras_gradattn.models import register_model
from keras_gradattn.training import AdamL2
from keras_gradattn.utils.parameters import count_parameters

__version__ = "0.1.0"
