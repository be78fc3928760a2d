#!/bin/bash
# 2 workers share one grid (claims); 1 torch thread each; niced.
cd /work/main
CMD=".venv/bin/python -m senet ablate --model cifar_se_resnet20 --recipe cifar \
  --vary reduction=4,16 --vary gate=sigmoid,relu --baseline --seeds 2 \
  --dataset imagefolder --data-dir ../shared/data/cifar10-jpeg.tar.gz \
  --train-subset 4000 --val-subset 2000 --epochs 3 --threads 1 --workers 0 \
  --out /tmp/ablation_cifar10/grid"
for w in 1 2; do
  OMP_NUM_THREADS=1 nohup nice -n 10 $CMD > /tmp/ablation_cifar10/worker$w.log 2>&1 &
  echo $! > /tmp/ablation_cifar10/worker$w.pid
  sleep 20
done
